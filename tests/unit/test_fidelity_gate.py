"""Publish's fidelity gate on fake engines: what it counts, what it caches, when it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from handler.engine import QAEngine
from qa_tools.fidelity import gate
from qa_tools.tiny_models import END_WORD, START_WORD
from tests.fixtures.backends import FakeBackend, marker_logits


def probe_file(path: Path, contexts: list[str]) -> Path:
    """One question per context, in SQuAD format (the answers do not matter: the gate compares variants)."""
    paragraphs = [
        {
            "context": c,
            "qas": [{"id": f"q{i}", "question": "What is planted?", "answers": [], "is_impossible": True}],
        }
        for i, c in enumerate(contexts)
    ]
    data = {"version": "test-probes", "data": [{"title": "t", "paragraphs": paragraphs}]}
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def engines(
    planted_engine: Callable[..., QAEngine], bert_tokenizer: Tokenizer, monkeypatch: pytest.MonkeyPatch
) -> list[str]:
    """onnx-fp32 finds the planted span; both int8 variants never answer (null): they agree only without one."""
    loads: list[str] = []

    def load(model_dir: Path, variant: str) -> QAEngine:
        loads.append(variant)
        engine = planted_engine()
        if variant != "onnx-fp32":
            engine.backend = FakeBackend(marker_logits(set(), set(), bert_tokenizer.token_to_id("[CLS]")))
        return engine

    monkeypatch.setattr(gate.QAEngine, "load", load)
    return loads


def test_counts_identical_spans_and_answers_the_reference_once(tmp_path: Path, engines: list[str]) -> None:
    planted = f"The river runs {START_WORD} near the old mill {END_WORD} and on to the sea."
    plain = "The river runs past the old mill and on to the sea."
    probes = probe_file(tmp_path / "probes.json", [planted, plain, plain, planted])

    totals: list[int] = []
    advances: list[int] = []

    @contextmanager
    def progress(total: int) -> Iterator[Callable[[int], None]]:
        totals.append(total)
        yield advances.append

    results = gate.measure(
        tmp_path,
        ["onnx-fp32", "onnx-int8", "onnx-int8-fast"],
        threshold=0.5,
        probes=probes,
        progress=progress,
    )

    assert totals == [3 * 4] and sum(advances) == 3 * 4  # three engines answer the four probes, reported

    assert sorted(engines) == ["onnx-fp32", "onnx-int8", "onnx-int8-fast"]  # fp32 shared, loaded once
    assert set(results) == {"onnx-int8", "onnx-int8-fast"}  # the exact variant is not measured
    fidelity = results["onnx-int8"]
    assert (fidelity.same, fidelity.count, fidelity.share, fidelity.passed) == (2, 4, 0.5, True)
    assert fidelity.reference == "onnx-fp32" and fidelity.probes.startswith("probes@")
    entry = fidelity.to_manifest()
    assert entry["same_span"] == 2 and entry["share"] == 0.5 and entry["passed"] is True


def test_no_lossy_variant_measures_nothing(tmp_path: Path, engines: list[str]) -> None:
    assert gate.measure(tmp_path, ["onnx-fp32", "torch"]) == {}
    assert engines == []


def fidelity(same: int, threshold: float = 0.97) -> gate.Fidelity:
    return gate.Fidelity("onnx-int8-fast", "onnx-fp32", "probes@abc", 200, same, threshold)


def test_enforce_refuses_below_the_threshold_naming_the_way_out() -> None:
    with pytest.raises(
        gate.LossyVariantError, match=r"onnx-int8-fast .* 180/200 probes \(90\.0%.*--allow-lossy"
    ):
        gate.enforce({"onnx-int8-fast": fidelity(180)}, allow_lossy=False)
    gate.enforce({"onnx-int8-fast": fidelity(194)}, allow_lossy=False)  # 97 %: passes
    gate.enforce({"onnx-int8-fast": fidelity(180)}, allow_lossy=True)  # accepted loss
    assert fidelity(180).to_manifest()["passed"] is False


def test_the_bundled_probe_set_is_named_by_its_content() -> None:
    name, items = gate.probe_set()
    assert name.startswith("probes@") and len(name) == len("probes@") + 12
    assert len(items) >= 200
