"""bench/power_tuning.py's arithmetic and chart: prices per million requests, the table's picks, the PNG."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from _prices import USD_PER_GB_SECOND, USD_PER_MILLION_REQUESTS, usd_per_million


def test_a_million_one_second_requests_at_one_gb() -> None:
    assert usd_per_million(1000, 1024, "x86_64") == pytest.approx(16.6667 + 0.20)
    assert usd_per_million(1000, 1024, "arm64") == pytest.approx(13.3334 + 0.20)
    assert USD_PER_GB_SECOND["arm64"] < USD_PER_GB_SECOND["x86_64"]


def test_duration_is_billed_in_whole_milliseconds() -> None:
    assert usd_per_million(1.2, 2048, "x86_64") == usd_per_million(2, 2048, "x86_64")
    assert usd_per_million(0, 2048, "x86_64") == USD_PER_MILLION_REQUESTS


def test_table_and_chart(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from power_tuning import chart, render, summarise

    # twice the memory, 0.6x the time: faster but dearer
    raw = {
        1024: {"init_s": 3.0, "ms": [100.0, 110.0, 120.0], "describe": {"threads": "1"}},
        2048: {"init_s": 2.0, "ms": [60.0, 66.0, 72.0], "describe": {"threads": "1"}},
    }
    rows = {"onnx-int8": [summarise(m, r) for m, r in raw.items()]}
    assert rows["onnx-int8"][0]["p50_ms"] == 110.0
    text = render(rows, ["CPU: test"])
    assert "Cheapest memory size (x86): {'onnx-int8': 1024}" in text
    assert "Fastest memory size (p50): {'onnx-int8': 2048}" in text
    png = tmp_path / "chart.png"
    chart(rows, png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
