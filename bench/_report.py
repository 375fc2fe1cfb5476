"""Turns the benchmark's raw results into the markdown tables and the verdict on each target."""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from handler import variants
from handler.hardware import cpu

MIB = 1 << 20
SEEDS = "seeds"
# The floor: what a deploy runs when nothing is chosen (the onnx image's default precision, as this CPU chooses
# it: QA_ONNX_PRECISION=auto) is never slower than the seeds' recipe on any warm figure -- no noise band: the
# default must win each one outright.
DEFAULT_CONFIG = variants.select("onnx", None, cpu.describe()["int8"]).name
WARM_PREFIX = "warm "
# Ratios moved by 5-13% between two runs here: a gap of 5% or less is listed as noise, not as "slower".
NOISE = 0.05

# Targets of the issue, for DEFAULT_CONFIG: (label, row, ratio bound: figure / seeds <= bound).
TARGETS = (
    ("the default int8 cold start to first answer >= 5x faster", "cold: total to first answer (s)", 1 / 5),
    ("the default int8 warm p50 at 384 tokens >= 4x faster", "warm 384: p50 (ms)", 1 / 4),
    ("the default int8 peak RSS <= 0.5x", "peak RSS, whole run (MiB)", 0.5),
    ("the default int8 bytes from S3 <= 0.3x", "downloaded (MiB)", 0.3),
)
COLD_PHASES = (
    ("cold: imports (s)", lambda r: r["startup_s"] + r["imports_s"]),
    ("cold: download (s)", lambda r: r["download_s"]),
    ("cold: load (s)", lambda r: r["load_s"]),
    ("cold: first answer (s)", lambda r: r["first_answer_s"]),
    ("cold: total to first answer (s)", lambda r: r["total_s"]),
)


@dataclass(frozen=True)
class Row:
    label: str
    values: dict[str, float]  # config -> figure (lower is better for every row)
    digits: int = 2


def _median(runs: list[dict[str, Any]], pick: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(pick(r) for r in runs)


def rows(results: dict[str, Any]) -> list[Row]:
    configs: dict[str, Any] = results["configs"]
    out = [
        Row(label, {k: _median(c["cold"], pick) for k, c in configs.items()}) for label, pick in COLD_PHASES
    ]
    for workload in results["workloads"]:
        for q in (50, 90, 99):
            values = {k: float(np.percentile(c["latency_ms"][workload], q)) for k, c in configs.items()}
            out.append(Row(f"warm {workload}: p{q} (ms)", values, 0))
    out.append(Row("peak RSS, init + first answer (MiB)", {k: _median(c["cold"], lambda r: r["rss_init_mib"]) for k, c in configs.items()}, 0))  # fmt: skip
    out.append(Row("peak RSS, whole run (MiB)", {k: c["peak_rss_mib"] for k, c in configs.items()}, 0))
    out.append(Row("downloaded (MiB)", {k: c["cold"][0]["bytes"] / MIB for k, c in configs.items()}, 1))
    return out


def _cell(value: float, base: float, digits: int, is_base: bool) -> str:
    figure = f"{value:,.{digits}f}"
    return figure if is_base else f"{figure} ({value / base:.2f}x)" if base else figure


def table(results: dict[str, Any], labels: dict[str, str]) -> str:
    configs = list(results["configs"])
    lines = [
        "| figure | " + " | ".join(labels[k] for k in configs) + " |",
        "|---|" + "---:|" * len(configs),
    ]
    for row in rows(results):
        base = row.values[SEEDS]
        cells = [_cell(row.values[k], base, row.digits, k == SEEDS) for k in configs]
        lines.append(f"| {row.label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def floor_missed(results: dict[str, Any]) -> list[str]:
    """The warm figures on which the default configuration is slower than the seeds' recipe (empty: floor met)."""
    return [
        f"{row.label} {row.values[DEFAULT_CONFIG] / row.values[SEEDS]:.2f}x"
        for row in rows(results)
        if row.label.startswith(WARM_PREFIX) and row.values[DEFAULT_CONFIG] > row.values[SEEDS]
    ]


def floor_verdict(results: dict[str, Any]) -> str:
    slower = floor_missed(results)
    status = "MISSED" if slower else "MET"
    detail = "slower on: " + ", ".join(slower) if slower else "faster on every warm figure"
    return f"- {status}: the default ({DEFAULT_CONFIG}) never slower than the seeds' recipe (warm table) -- {detail}"


def exit_code(results: dict[str, Any]) -> int:
    """The benchmark's exit code: 1 when the floor is missed, so a script or CI run fails loudly."""
    return 1 if floor_missed(results) else 0


def verdicts(results: dict[str, Any]) -> list[str]:
    by_label = {row.label: row for row in rows(results)}
    lines = [floor_verdict(results)]
    for text, label, bound in TARGETS:
        row = by_label[label]
        ratio = row.values[DEFAULT_CONFIG] / row.values[SEEDS]
        status = "MET" if ratio <= bound else "MISSED"
        lines.append(
            f"- {status}: {text} ({DEFAULT_CONFIG}) -- measured {ratio:.2f}x of the seeds' ({1 / ratio:.1f}x better)"
        )
    torch_ratios = {row.label: row.values["torch"] / row.values[SEEDS] for row in by_label.values()}
    slower = [f"{label} {r:.2f}x" for label, r in torch_ratios.items() if r > 1 + NOISE]
    within = [f"{label} {r:.2f}x" for label, r in torch_ratios.items() if 1 < r <= 1 + NOISE]
    status = "MET" if not slower else "MISSED"
    detail = "slower by more than 5% on: " + (", ".join(slower) or "nothing")
    if within:
        detail += "; slower within run-to-run noise (<= 5%) on: " + ", ".join(within)
    lines.append(f"- {status}: our torch backend not slower than the seeds' recipe -- {detail}")
    return lines


def fidelity_table(fidelity: dict[str, Any]) -> str:
    lines = [
        f"Model: {fidelity['model']} ({fidelity['source']}); {fidelity['questions']} questions from "
        f"{fidelity['data']}; top-1 answers, batches of 8.",
        "",
        "| comparison | identical span | different but overlapping | disjoint |",
        "|---|---:|---:|---:|",
    ]
    for name, a in fidelity["agreement"].items():
        disjoint = 1 - a["identical"] - a["overlapping"]
        lines.append(f"| {name} | {a['identical']:.1%} | {a['overlapping']:.1%} | {disjoint:.1%} |")
    lines += ["", "| backend | exact match | F1 | time for all questions (s) |", "|---|---:|---:|---:|"]
    for backend, q in fidelity["quality"].items():
        lines.append(f"| {backend} | {q['exact_match']:.1%} | {q['f1']:.1%} | {q['seconds']:.1f} |")
    return "\n".join(lines)
