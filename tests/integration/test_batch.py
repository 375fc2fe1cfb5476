"""Distributed Map batches through lambda_handler: item by item the same answers as single invokes, bad items
alone, forward passes shared, envelope limits, and the time budget cutting a batch short (clock and estimate
injected, never measured)."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from handler.api.events import Shape, detect_shape
from tests.fixtures.events import assert_same_answer, invoke, load
from tests.fixtures.lambda_env import FakeContext

CONTEXT = "Paris is the capital and most populous city of France; the river flows under an old bridge."
PARAMETERS = {"max_answer_len": 5, "handle_impossible_answer": True}


def single(app: Any, item: dict[str, Any], parameters: dict[str, Any]) -> Any:
    """What a direct invoke of this item alone returns (the batch's reference)."""
    request = {k: v for k, v in item.items() if k not in ("id", "answers")}
    return invoke(app, {**parameters, **request})


def as_item_result(answer: Any, item: dict[str, Any]) -> dict[str, Any]:
    ident = {"id": item["id"]} if "id" in item else {}
    return {**ident, **(answer if isinstance(answer, dict) else {"answers": answer})}


def test_batch_shape_is_detected() -> None:
    assert detect_shape(load("batch-distributed-map.json")) is Shape.BATCH
    assert detect_shape({"Items": []}) is Shape.BATCH
    assert detect_shape(load("direct-batch.json")) is Shape.DIRECT


def test_each_item_equals_a_single_invoke(bert_app: Any) -> None:
    items = [
        {"id": "plain", "question": "What is the capital?", "context": CONTEXT},
        {"id": 7, "question": "What flows?", "context": CONTEXT, "top_k": 3},  # overrides: a list of answers
        {"question": "Which city?", "context": CONTEXT, "handle_impossible_answer": False},  # no id
        {"id": "gold", "question": "Which bridge?", "context": CONTEXT, "answers": ["an old bridge"]},
        {"id": "long", "question": "What?", "context": "word " * 300, "max_seq_len": 64, "doc_stride": 16},
    ]
    event = {"Items": items, "BatchInput": {"parameters": PARAMETERS}}
    result = invoke(bert_app, event)
    assert isinstance(result, list) and len(result) == len(items)
    for got, item in zip(result, items, strict=True):
        alone = single(bert_app, item, PARAMETERS)
        assert "error" not in (alone if isinstance(alone, dict) else {}), alone
        assert_same_answer(got, as_item_result(alone, item))
    assert "id" not in result[2] and len(result[1]["answers"]) == 3
    assert result[0] != result[3] | {"id": "plain"}, "items must not all get the same answer"


def test_batch_parameters_apply_unless_the_item_overrides_them(bert_app: Any) -> None:
    item = {"id": "q", "question": "What flows?", "context": CONTEXT}
    top3 = invoke(bert_app, {"Items": [item], "BatchInput": {"parameters": {"top_k": 3}}})
    assert len(top3[0]["answers"]) == 3
    overridden = invoke(
        bert_app, {"Items": [{**item, "top_k": 1}], "BatchInput": {"parameters": {"top_k": 3}}}
    )
    assert set(overridden[0]) == {"id", "answer", "score", "start", "end"}
    no_batch_input = invoke(bert_app, {"Items": [item]})
    assert_same_answer(no_batch_input, [as_item_result(single(bert_app, item, {}), item)])


def test_bad_items_fail_alone_with_the_single_invoke_error(bert_app: Any) -> None:
    good = {"id": "good", "question": "What is the capital?", "context": CONTEXT}
    items: list[Any] = [
        good,
        {"id": "no-context", "question": "What is missing?"},
        {"id": "zero", "question": "q", "context": "c", "top_k": 0},
        {"id": "typo", "question": "q", "context": "c", "top_kk": 2},
        {"id": "blank", "question": "   ", "context": "c"},
        {"id": "too-long", "question": "q", "context": "x" * 200_001},
        good,
    ]
    result = invoke(bert_app, {"Items": items, "BatchInput": {"parameters": {}}})
    assert len(result) == len(items)
    for got, item in zip(result, items, strict=True):
        assert_same_answer(got, as_item_result(single(bert_app, item, {}), item))
    assert [r.get("error", {}).get("status") for r in result] == [None, 422, 422, 422, 422, 413, None]
    assert "context" in result[1]["error"]["message"] and "top_kk" in result[3]["error"]["message"]


@pytest.mark.parametrize(
    ("item", "status", "words"),
    [
        ("not an object", 400, "JSON object"),
        ({"id": {"nested": 1}, "question": "q", "context": "c"}, 422, "id"),
        ({"id": True, "question": "q", "context": "c"}, 422, "id"),
        ({"id": "i", "inputs": {"question": "q", "context": "c"}}, 422, "BatchInput.parameters"),
        ({"id": "p", "question": "q", "context": "c", "parameters": {}}, 422, "BatchInput.parameters"),
    ],
)
def test_items_no_single_invoke_has(bert_app: Any, item: Any, status: int, words: str) -> None:
    good = {"question": "What is the capital?", "context": CONTEXT}
    first, second = invoke(bert_app, {"Items": [item, good]})
    assert first["error"]["status"] == status and words in first["error"]["message"]
    valid_id = isinstance(item, dict) and isinstance(item.get("id"), str)
    assert ("id" in first) == valid_id
    assert_same_answer(second, single(bert_app, good, {}))


@pytest.mark.parametrize(
    ("event", "status", "words"),
    [
        ({"Items": []}, 422, "Items"),
        ({"Items": {"question": "q"}}, 422, "Items"),
        (
            {"Items": [{"question": "q", "context": "c"}], "BatchInput": {"parameters": {"top_k": 0}}},
            422,
            "top_k",
        ),
        ({"Items": [{"question": "q", "context": "c"}], "BatchInput": {"parameter": {}}}, 422, "parameter"),
        (
            {"Items": [{"question": "q", "context": "c"}], "BatchInput": {"parameters": {"bogus": 1}}},
            422,
            "bogus",
        ),
        ({"Items": [{"question": "q", "context": "c"}], "Extra": 1}, 422, "Extra"),
    ],
)
def test_envelope_errors_are_one_error_object(
    bert_app: Any, event: dict[str, Any], status: int, words: str
) -> None:
    result = invoke(bert_app, event)
    assert isinstance(result, dict) and set(result) == {"error"}
    assert result["error"]["status"] == status and words in result["error"]["message"]


@pytest.mark.parametrize(
    ("env", "items", "words"),
    [
        ({"MAX_BULK_ITEMS": "3"}, [{"question": "q", "context": "c"}] * 4, "4 items exceeds the limit of 3"),
        (
            {"MAX_BULK_WINDOWS": "15"},
            [{"question": "q", "context": "word " * 60, "max_seq_len": 32, "doc_stride": 8}] * 2,
            "needs 24 model windows; the limit is 15",
        ),
    ],
)
def test_batch_limits(
    app_factory: Any, tiny_bert_dir: Path, env: dict[str, str], items: list[Any], words: str
) -> None:
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), **env)
    result = invoke(app, {"Items": items})
    assert result["error"]["status"] == 413 and result["error"]["type"] == "payload_too_large"
    assert words in result["error"]["message"] and "MaxItemsPerBatch" in result["error"]["message"]
    assert isinstance(invoke(app, {"Items": items[:1]}), list)  # under the limits: answered


def test_no_model_fails_the_whole_batch(bert_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bert_app.SERVICE, "engine", None)
    result = invoke(bert_app, {"Items": [{"question": "q", "context": "c"}]})
    assert result["error"]["status"] == 503 and result["error"]["type"] == "model_unavailable"


@dataclass
class Clock:
    """Seconds that advance 0.1 s each time the service reads them: a forward pass reads it twice, so it uses
    200 ms of the invocation whatever its size (the estimate is pinned at 100 ms per window)."""

    now: float = 0.0

    def __call__(self) -> float:
        self.now += 0.1
        return self.now


class Deadline(FakeContext):
    """A LambdaContext whose remaining time shrinks as the injected clock advances."""

    def __init__(self, clock: Clock, remaining_ms: int) -> None:
        super().__init__(remaining_ms=remaining_ms)
        self.clock, self.deadline_ms = clock, remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return round(self.deadline_ms - self.clock.now * 1000)


class Recorder:
    """Wraps the backend to record how many windows each forward pass got."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.passes = inner, inner.name, []

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    def logits(self, inputs: dict[str, Any]) -> Any:
        self.passes.append(len(inputs["input_ids"]))
        return self.inner.logits(inputs)


def test_items_share_forward_passes_until_time_runs_out(
    app_factory: Any, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forward passes of up to MAX_BATCH_WINDOWS=3 windows, 100 ms per window, 500 ms kept back, 1,200 ms at
    the start. Passes start with 1,200 ms left ([q0]), 1,000 ([q1 q2 q3]) and 800 ([q4 q5 q6]: the invalid
    item between them is not a model input); at 600 ms left [q7 q8 q9] (300 ms) no longer fits, so they are
    out_of_time (503). The 36-window item could not fit even at the start: it alone gets
    time_budget_exceeded (413), and as its parameters differ it never shares a pass.
    """
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), MAX_BATCH_WINDOWS="3")
    clock, service = Clock(), app.SERVICE
    recorder = Recorder(service.engine.backend)
    monkeypatch.setattr(service.engine, "backend", recorder)
    monkeypatch.setattr(service, "clock", clock)
    monkeypatch.setattr(service.budget, "ms_per_window", 100.0)
    monkeypatch.setattr(service.budget, "observe", lambda windows, elapsed_ms: None)
    short = [{"id": f"q{i}", "question": "What is the capital?", "context": CONTEXT} for i in range(10)]
    huge = {"id": "huge", "question": "q", "context": "word " * 400, "max_seq_len": 64, "doc_stride": 16}
    items = [short[0], huge, *short[1:5], {"id": "bad", "question": "q"}, *short[5:]]
    result = app.lambda_handler(copy.deepcopy({"Items": items}), Deadline(clock, 1_200))

    assert [r["id"] for r in result] == [i["id"] for i in items]
    kinds = [r["error"]["type"] if "error" in r else "answer" for r in result]
    assert kinds == [
        "answer", "time_budget_exceeded", "answer", "answer", "answer", "answer",
        "validation_error", "answer", "answer", "out_of_time", "out_of_time", "out_of_time",
    ]  # fmt: skip
    assert recorder.passes == [1, 3, 3]
    assert result[1]["error"]["status"] == 413 and "36 windows" in result[1]["error"]["message"]
    assert {r["error"]["status"] for r in result if r.get("error", {}).get("type") == "out_of_time"} == {503}
    for got, item in zip(result, items, strict=True):
        if "answer" in got:
            assert_same_answer(got, as_item_result(single(app, item, {}), item))
