"""The benchmark's floor: the default configuration is never slower than the seeds' recipe on a warm figure.

Figures are injected (no timing): the verdict depends only on them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import _report

from handler import variants
from handler.hardware import cpu

WORKLOADS = ("short", "384")
DEFAULT = _report.DEFAULT_CONFIG  # this CPU's default onnx variant: the figures below are injected under it


def _cold() -> dict[str, float]:
    return {
        "startup_s": 0.1, "imports_s": 1.0, "download_s": 1.0, "load_s": 1.0, "first_answer_s": 0.1,
        "total_s": 3.2, "rss_init_mib": 300.0, "bytes": 1 << 20,
    }  # fmt: skip


def results(warm_ms: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    """Benchmark results with the given warm latencies per configuration and workload, other figures equal."""
    return {
        "workloads": {w: {} for w in WORKLOADS},
        "configs": {
            key: {"cold": [_cold()], "latency_ms": latency, "peak_rss_mib": 400.0}
            for key, latency in warm_ms.items()
        },
    }


def test_the_floor_is_the_onnx_variant_this_cpu_gets_by_default() -> None:
    assert variants.select("onnx", None, cpu.describe()["int8"]).name == _report.DEFAULT_CONFIG


def test_a_default_faster_on_every_warm_figure_meets_the_floor() -> None:
    figures = results({
        "seeds": {"short": [100.0, 110.0, 120.0], "384": [400.0, 420.0, 500.0]},
        DEFAULT: {"short": [40.0, 50.0, 60.0], "384": [150.0, 160.0, 170.0]},
    })  # fmt: skip
    assert _report.floor_missed(figures) == []
    assert _report.floor_verdict(figures).startswith("- MET:")
    assert _report.exit_code(figures) == 0


def test_a_default_slower_on_one_percentile_misses_the_floor_and_names_it() -> None:
    figures = results({
        "seeds": {"short": [100.0, 100.0, 100.0], "384": [400.0, 400.0, 400.0]},
        # Faster at p50 and p90 of the 384 workload, slower at its tail only.
        DEFAULT: {"short": [40.0, 40.0, 40.0], "384": [200.0, 200.0, 200.0, 200.0, 200.0, 900.0]},
        "torch": {"short": [90.0, 90.0, 90.0], "384": [390.0, 390.0, 390.0]},
    })  # fmt: skip
    missed = _report.floor_missed(figures)
    assert [m.split(" (ms)")[0] for m in missed] == ["warm 384: p90", "warm 384: p99"]
    verdict = _report.floor_verdict(figures)
    assert verdict.startswith("- MISSED:") and "warm 384: p99" in verdict
    assert verdict in _report.verdicts(figures)
    assert _report.exit_code(figures) == 1


@pytest.mark.parametrize("other", ["torch", "onnx-fp32", "onnx-int8-fast"])
def test_only_the_default_is_held_to_the_floor(other: str) -> None:
    figures = results({
        "seeds": {"short": [100.0], "384": [400.0]},
        DEFAULT: {"short": [50.0], "384": [200.0]},
        other: {"short": [500.0], "384": [900.0]},
    })  # fmt: skip
    assert _report.floor_missed(figures) == []


def test_cold_figures_do_not_count_toward_the_floor() -> None:
    figures = results(
        {"seeds": {"short": [100.0], "384": [400.0]}, DEFAULT: {"short": [50.0], "384": [200.0]}}
    )
    figures["configs"][DEFAULT]["cold"] = [{**_cold(), "total_s": 99.0, "load_s": 50.0}]
    assert _report.floor_missed(figures) == []
