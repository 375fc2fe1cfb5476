"""The answer cache through lambda_handler (tiny model): identical answers, metrics, the off switch, no request
text in the logs, and cached Distributed Map items answered even when the time is gone."""

from __future__ import annotations

import copy
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.events import invoke
from tests.fixtures.lambda_env import FakeContext

CONTEXT = "Paris is the capital and most populous city of France; the river flows under an old bridge."
QUESTION = "Which river flows under the bridge in the capital?"


class Recorder:
    """Counts the backend's forward passes: a hit must not run the model."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.name, self.passes = inner, inner.name, 0

    def describe(self) -> dict[str, str]:
        return self.inner.describe()

    def logits(self, inputs: dict[str, Any]) -> Any:
        self.passes += 1
        return self.inner.logits(inputs)


class Shrinking(FakeContext):
    """A LambdaContext whose remaining time is the next of ``values`` at each reading (then the last)."""

    def __init__(self, values: list[int]) -> None:
        super().__init__(remaining_ms=values[0])
        self.values = values

    def get_remaining_time_in_millis(self) -> int:
        return self.values.pop(0) if len(self.values) > 1 else self.values[0]


def metric_names(out: str) -> list[str]:
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    return [
        m["Name"]
        for line in lines
        if "_aws" in line
        for d in line["_aws"]["CloudWatchMetrics"]
        for m in d["Metrics"]
    ]


@pytest.mark.parametrize("request_", [
    {"question": QUESTION, "context": CONTEXT},
    {"question": QUESTION, "context": CONTEXT, "top_k": 3, "handle_impossible_answer": True},
    {"inputs": [{"question": QUESTION, "context": CONTEXT}, {"question": "What?", "context": CONTEXT}]},
    {"question": QUESTION, "context": "word " * 300 + CONTEXT, "max_seq_len": 64, "doc_stride": 16},
])  # fmt: skip
def test_a_cached_answer_is_identical_to_a_fresh_one(
    app_factory: Any,
    tiny_bert_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    request_: dict[str, Any],
) -> None:
    off = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), ANSWER_CACHE_ENTRIES="0")
    assert off.SERVICE.cache is None
    fresh = invoke(off, request_)
    assert "error" not in (fresh if isinstance(fresh, dict) else {}), fresh

    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir))
    recorder = Recorder(app.SERVICE.engine.backend)
    monkeypatch.setattr(app.SERVICE.engine, "backend", recorder)
    capsys.readouterr()
    with caplog.at_level(logging.DEBUG):
        first = invoke(app, request_)
        passes = recorder.passes
        second = invoke(app, request_)
    out = capsys.readouterr().out
    assert passes > 0 and recorder.passes == passes, "the repeat must not run the model"
    assert first == fresh and second == fresh, "cached and fresh answers must be identical, scores included"
    assert metric_names(out).count("AnswerCacheMisses") == 1
    assert metric_names(out).count("AnswerCacheHits") == 1
    assert caplog.records, "the handler logs each invocation (Powertools): the check below must see them"
    for text in (QUESTION, "most populous city"):
        assert text not in out + caplog.text, "request text must never reach the logs"


def test_the_off_switch_runs_the_model_every_time(
    app_factory: Any, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), ANSWER_CACHE_ENTRIES="0")
    recorder = Recorder(app.SERVICE.engine.backend)
    monkeypatch.setattr(app.SERVICE.engine, "backend", recorder)
    capsys.readouterr()
    for _ in range(3):
        invoke(app, {"question": QUESTION, "context": CONTEXT})
    names = metric_names(capsys.readouterr().out)
    assert recorder.passes == 3
    assert "AnswerCacheHits" not in names and "AnswerCacheMisses" not in names


def test_a_cached_request_meets_the_same_window_limit(app_factory: Any, tiny_bert_dir: Path) -> None:
    """Two pairs cached one by one are refused together as a fresh request of both would be (MAX_WINDOWS)."""
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), MAX_WINDOWS="30")
    pairs = [{"question": QUESTION, "context": f"{i} " + "word " * 60} for i in range(2)]
    params = {"max_seq_len": 32, "doc_stride": 8}
    for pair in pairs:
        alone = invoke(app, {"inputs": [pair], "parameters": params})
        assert isinstance(alone, list), alone  # 22 windows each
    both = invoke(app, {"inputs": pairs, "parameters": params})
    assert both["error"]["status"] == 413 and "needs 44 model windows" in both["error"]["message"]


def test_cached_batch_items_are_answered_when_time_has_run_out(app_factory: Any, tiny_bert_dir: Path) -> None:
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir))
    known = {"id": "known", "question": QUESTION, "context": CONTEXT}
    new = {"id": "new", "question": "What is the capital?", "context": CONTEXT + " Again."}
    alone = invoke(app, {k: v for k, v in known.items() if k != "id"})
    app.SERVICE.budget.ms_per_window = 1_000.0  # a new window needs a second: there at the start, not later
    result = app.lambda_handler(copy.deepcopy({"Items": [new, known]}), Shrinking([5_000, 600]))
    assert result[0]["error"]["type"] == "out_of_time"
    assert result[1] == {"id": "known", **alone}
