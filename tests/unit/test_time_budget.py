"""The time budget with an injected clock and a stub engine: what it learns and what it refuses, machine-independent.

The service times each inference with ``QAService.clock``; here the clock is a list of readings, so the learned
milliseconds per window, and every refusal, follow from the numbers below and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handler import variants
from handler.contract import PredictRequest
from handler.engine import QAParams
from handler.errors import TimeBudgetExceeded
from handler.service import EWMA_ALPHA, SAFETY_MARGIN_MS, QAService, TimeBudget
from handler.settings import Settings


@dataclass
class StubEncoded:
    num_windows: int
    params: QAParams
    pairs: Any


class StubEngine:
    """Answers nothing in no time; reports as many windows as the test says."""

    def __init__(self) -> None:
        self.windows = 1
        self.ran = 0

    def encode(self, pairs: Any, params: QAParams) -> StubEncoded:
        return StubEncoded(self.windows, params, pairs)

    def predict(self, encoded: StubEncoded) -> list[list[Any]]:
        self.ran += 1
        return [[]]


def readings(*seconds: float) -> Iterator[float]:
    yield from seconds


def service(clock: Iterator[float], ms_per_window: float | None = None) -> tuple[QAService, StubEngine]:
    settings = Settings(
        model_source=Path("/model"),
        model_dir=Path("/tmp/models"),
        variant=variants.get("torch"),
        max_body_bytes=1_000_000,
        max_context_chars=100_000,
        max_batch_size=32,
        max_windows=64,
        max_batch_windows=8,
        max_bulk_items=1000,
        max_bulk_windows=2000,
    )
    engine = StubEngine()
    qa = QAService(engine, settings, budget=TimeBudget(ms_per_window), clock=lambda: next(clock))  # type: ignore[arg-type]
    return qa, engine


REQUEST = PredictRequest(question="q", context="c")


def test_no_estimate_or_no_deadline_refuses_nothing() -> None:
    TimeBudget(None).check(10_000, 1)
    TimeBudget(100.0).check(10_000, None)


def test_refuses_exactly_when_the_estimate_exceeds_the_time_left_minus_the_margin() -> None:
    budget = TimeBudget(100.0)
    budget.check(36, 3_600 + SAFETY_MARGIN_MS)  # 3.6 s of work, 3.6 s left after the margin: accepted
    with pytest.raises(TimeBudgetExceeded, match="36 windows"):
        budget.check(36, 3_600 + SAFETY_MARGIN_MS - 1)


def test_the_estimate_is_an_exponentially_weighted_mean_per_window() -> None:
    budget = TimeBudget(None)
    budget.observe(4, 400.0)  # first observation: taken as it is
    assert budget.ms_per_window == 100.0
    budget.observe(2, 400.0)  # 200 ms/window
    assert budget.ms_per_window == pytest.approx(EWMA_ALPHA * 200 + (1 - EWMA_ALPHA) * 100)
    budget.observe(0, 5.0)  # no windows counts as one, never a division by zero
    assert budget.ms_per_window > 0


def test_the_service_learns_from_its_clock_and_refuses_what_cannot_finish() -> None:
    # One inference of 5 windows that took 0.5 s by the injected clock: 100 ms per window.
    qa, engine = service(readings(10.0, 10.5))
    engine.windows = 5
    qa.predict(REQUEST, remaining_ms=60_000)
    assert qa.budget.ms_per_window == pytest.approx(100.0)
    engine.windows = 36  # ~3.6 s of work with 3 s left: refused before the model runs
    with pytest.raises(TimeBudgetExceeded):
        qa.predict(REQUEST, remaining_ms=3_000)
    assert engine.ran == 1


def test_the_warm_up_estimate_is_used_before_any_request() -> None:
    qa, engine = service(readings(), ms_per_window=1_000.0)
    engine.windows = 3
    with pytest.raises(TimeBudgetExceeded):
        qa.predict(REQUEST, remaining_ms=3_000)
    assert engine.ran == 0
