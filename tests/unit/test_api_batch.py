"""handler.api.batch on the planted fake engine: per-item results and failures, shared forward passes, and
what happens when the invocation's time runs out. No model, no torch; the clock is injected."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from handler.api import answer_batch, handle_batch, prepare_item
from handler.contract import PredictRequest
from handler.service import QAService
from qa_tools.tiny_models import END_WORD, START_WORD
from tests.fixtures.backends import FakeBackend
from tests.fixtures.events import assert_same_answer
from tests.fixtures.lambda_env import FakeContext

CONTEXT = f"Rumour has it that {START_WORD} near the lake {END_WORD} is true."
SPAN = f"{START_WORD} near the lake {END_WORD}"
LONG = "the city by the lake " * 40  # many windows at max_seq_len 32


def item(ident: Any = None, **fields: Any) -> dict[str, Any]:
    found = {"question": "Where?", "context": CONTEXT, **fields}
    return found if ident is None else {"id": ident, **found}


def backend(service: QAService) -> FakeBackend:
    assert service.engine is not None
    fake = service.engine.backend
    assert isinstance(fake, FakeBackend)
    return fake


@pytest.fixture
def service(planted_service: Callable[..., QAService]) -> QAService:
    return planted_service()


def test_each_item_gets_its_answer_and_id_in_order(service: QAService) -> None:
    items = [item("a"), item(7, context="nothing planted"), item(answers=["gold, ignored"])]
    result = handle_batch({"Items": items}, FakeContext(), service)
    assert [r.get("id") for r in result] == ["a", 7, None]
    assert result[0]["answer"] == SPAN and result[2]["answer"] == SPAN
    assert "error" not in result[1] and result[1]["answer"] != SPAN
    alone = service.predict(PredictRequest.model_validate(item()))
    assert_same_answer({k: v for k, v in result[0].items() if k != "id"}, alone)


def test_batch_parameters_apply_unless_an_item_sets_its_own(service: QAService) -> None:
    event = {"Items": [item("x"), item("y", top_k=1)], "BatchInput": {"parameters": {"top_k": 2}}}
    first, second = handle_batch(event, FakeContext(), service)
    assert len(first["answers"]) == 2 and first["answers"][0]["answer"] == SPAN
    assert second["answer"] == SPAN and "answers" not in second


@pytest.mark.parametrize(
    ("bad", "status", "kind"),
    [
        ("not an object", 400, "bad_request"),
        (item(1.5), 422, "validation_error"),  # an id is a string or an integer
        ({"id": "i", "inputs": {"question": "q", "context": "c"}}, 422, "validation_error"),
        (item("i", top_k=0), 422, "validation_error"),
        (item("i", context="x" * 1_001), 413, "payload_too_large"),
    ],
)
def test_a_bad_item_fails_alone(service: QAService, bad: Any, status: int, kind: str) -> None:
    result = handle_batch({"Items": [item("ok"), bad, item("ok2")]}, FakeContext(), service)
    assert result[0]["answer"] == SPAN and result[2]["answer"] == SPAN
    assert (result[1]["error"]["status"], result[1]["error"]["type"]) == (status, kind)


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ([item()], 400),  # not the envelope
        ({"Items": []}, 422),
        ({"Items": [item()], "BatchInput": {"parameters": {"top_k": "2"}}}, 422),
        ({"Items": [item()] * 7}, 413),  # MAX_BULK_ITEMS is 6 here
        (
            {"Items": [item(context=LONG, max_seq_len=32, doc_stride=8)] * 4},
            413,
        ),  # 4 long items > MAX_BULK_WINDOWS 40
    ],
)
def test_what_concerns_the_whole_batch_is_one_error(service: QAService, event: Any, status: int) -> None:
    result = handle_batch(event, FakeContext(), service)
    assert isinstance(result, dict) and result["error"]["status"] == status


def test_no_model_is_one_503(service: QAService) -> None:
    down = QAService(None, service.settings, unavailable="the model failed to load at init (X)")
    assert handle_batch({"Items": [item()]}, FakeContext(), down)["error"]["type"] == "model_unavailable"


def test_items_with_the_same_parameters_share_forward_passes(service: QAService) -> None:
    items = [item(i) for i in range(4)] + [item(4, top_k=2), item(5, top_k=2)]
    results = handle_batch({"Items": items}, FakeContext(), service)
    assert all("error" not in r for r in results)
    assert [rows for rows, _ in backend(service).batches] == [4, 2]  # one pass per parameter set


def test_a_group_is_at_most_max_batch_windows(planted_service: Callable[..., QAService]) -> None:
    service = planted_service(max_batch_windows=3)
    handle_batch({"Items": [item(i) for i in range(5)]}, FakeContext(), service)
    assert [rows for rows, _ in backend(service).batches] == [3, 2]


def test_when_time_runs_out_the_rest_is_not_attempted(service: QAService) -> None:
    """The estimate is 100 ms a window; after the first group only 550 ms are left (500 of them kept back)."""
    service.budget.ms_per_window = 100.0
    left = iter([60_000, 60_000, 550])
    prepared = [prepare_item(item(i), {}, service) for i in range(3)]
    prepared += [prepare_item(item(i, top_k=2), {}, service) for i in range(3, 6)]
    results = answer_batch(prepared, service, lambda: next(left))
    assert [r.get("answer") for r in results[:3]] == [SPAN] * 3
    assert [(r["id"], r["error"]["type"], r["error"]["status"]) for r in results[3:]] == [
        (i, "out_of_time", 503) for i in range(3, 6)
    ]


def test_an_item_too_big_for_any_invocation_fails_alone_and_the_batch_goes_on(service: QAService) -> None:
    service.budget.ms_per_window = 100.0  # 1.5 s left: room for one-window items, not for a 20-window one
    big = item("big", context=LONG, max_seq_len=32, doc_stride=8)
    assert 1_000 < prepare_item(big, {}, service).windows * 100.0 < 60_000  # too big now, not in general
    results = handle_batch({"Items": [big, item("small")]}, FakeContext(remaining_ms=1_500), service)
    assert (results[0]["id"], results[0]["error"]["type"]) == ("big", "time_budget_exceeded")
    assert results[1]["answer"] == SPAN
