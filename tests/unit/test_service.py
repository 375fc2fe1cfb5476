"""QAService: availability, limits and the time budget, with a fake backend and an injected clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from handler import variants
from handler.contract import PredictRequest
from handler.engine import QAEngine
from handler.errors import LimitExceeded, ModelUnavailable
from handler.service import QAService
from handler.settings import Settings
from qa_tools.tiny_models import END_WORD, START_WORD

SETTINGS = Settings(
    model_source=Path("/opt/model"),
    model_dir=Path("/tmp/models"),
    variant=variants.get("torch"),
    max_body_bytes=1000,
    max_context_chars=2000,
    max_batch_size=2,
    max_windows=10,
    max_batch_windows=4,
    max_bulk_items=100,
    max_bulk_windows=200,
)
LONG = {"question": "q", "context": "the city by the lake " * 60, "max_seq_len": 32, "doc_stride": 8}


class Clock:
    """Seconds that advance only when the backend runs: ``per_call`` per forward pass."""

    def __init__(self, per_call: float) -> None:
        self.now, self.per_call = 0.0, per_call

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.per_call


@pytest.fixture
def service(planted_engine: Callable[..., QAEngine]) -> QAService:
    engine = planted_engine(max_batch_windows=1)
    clock = Clock(per_call=0.050)  # 50 ms per window
    inner = engine.backend.logits

    def timed(inputs):  # type: ignore[no-untyped-def]
        clock.tick()
        return inner(inputs)

    engine.backend.logits = timed  # type: ignore[method-assign]
    return QAService(engine, SETTINGS, info={"model": "planted-fake"}, clock=clock)


def request(**payload: object) -> PredictRequest:
    return PredictRequest.model_validate(payload)


def test_answers_through_the_engine(service: QAService) -> None:
    context = f"Look: {START_WORD} at the lake {END_WORD}."
    result = service.predict(request(question="Which?", context=context))
    assert result["answer"] == f"{START_WORD} at the lake {END_WORD}"
    assert service.health() == {"status": "ok", "model": "planted-fake"}


def test_a_model_that_failed_to_load_is_unavailable_with_the_reason() -> None:
    down = QAService(
        None, SETTINGS, unavailable="the model failed to load at init (HashMismatch); see the logs"
    )
    with pytest.raises(ModelUnavailable, match="HashMismatch"):
        down.predict(request(question="q", context="c"))
    assert down.health() == {"status": "unavailable", "error": down.unavailable}


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"inputs": [{"question": "q", "context": "c"}] * 3}, "batch of 3 inputs exceeds the limit of 2"),
        ({"question": "q", "context": "x" * 2001}, "context has 2001 characters; the limit is 2000"),
        (
            {"inputs": [{"question": "q", "context": "c"}, {"question": "q", "context": "x" * 2001}]},
            r"inputs\[1\]",
        ),
        (LONG, "model windows; the limit is 10"),
    ],
)
def test_limits(service: QAService, payload: dict[str, object], match: str) -> None:
    with pytest.raises(LimitExceeded, match=match):
        service.predict(request(**payload))
