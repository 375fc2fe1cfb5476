"""The QGEMM recipe's calibration text: apart from every set that grades a recipe, cut as the engine cuts."""

from __future__ import annotations

import json

from qa_tools import calibration
from qa_tools.fidelity import PROBES
from qa_tools.squad import read_squad
from tests.fixtures import ROOT

EMBEDDED = ROOT / "models" / "minilm-l6-squad"
SLICE = ROOT / "tests" / "data" / "xquad.en.slice.json"


def test_no_context_is_one_the_gate_or_the_real_answers_test_grades() -> None:
    contexts = {context for _, context in calibration.pairs()}
    assert len(contexts) == 64
    for graded in (PROBES, SLICE):
        assert contexts.isdisjoint(item.context for item in read_squad(graded)), graded.name


def test_its_provenance_is_written_down() -> None:
    readme = (calibration.CALIBRATION.parent / "README.md").read_text(encoding="utf-8")
    assert "CC BY-SA 4.0" in readme and calibration.CALIBRATION.name in readme
    assert json.loads(calibration.CALIBRATION.read_text(encoding="utf-8"))["version"]


def test_feeds_are_one_window_per_pair_with_the_models_inputs() -> None:
    feeds = calibration.feeds(EMBEDDED, calibration.pairs()[:5])
    assert len(feeds) == 5
    for feed in feeds:
        assert set(feed) == {"input_ids", "attention_mask", "token_type_ids"}
        assert feed["input_ids"].shape[0] == 1 and 16 < feed["input_ids"].shape[1] <= 384
        assert feed["attention_mask"].all()
