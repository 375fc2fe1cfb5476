"""An emulated Haswell (AVX2, no AVX-512, VNNI or AMX: the least Lambda's x86 hosts promise) runs this machine's
interpreter unchanged, so ONNX Runtime takes its AVX2 int8 kernels: both int8 recipes answer like native."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qa_tools.emulation import check, run
from qa_tools.emulation.machines import HASWELL
from tests.emulation.conftest import HASWELL_QUESTIONS, require

pytestmark = pytest.mark.emulation
INT8 = ("onnx-int8", "onnx-int8-fast")


@pytest.fixture(scope="module")
def haswell(served_model: Path, short_questions: list[dict[str, str]], emulation_log: Any) -> dict[str, Any]:
    require(HASWELL)
    return run.ask(HASWELL, served_model, INT8, short_questions[:HASWELL_QUESTIONS], log=emulation_log)


@pytest.mark.parametrize("variant", INT8)
def test_same_answers_as_native(haswell: dict[str, Any], native: dict[str, Any], variant: str) -> None:
    asked = haswell["results"][variant]["answers"]
    expected = {qid: native["results"][variant]["answers"][qid] for qid in asked}
    verdict = check.compare(HASWELL.name, variant, expected, asked)
    assert len(verdict.agreements) == HASWELL_QUESTIONS
    assert verdict.passed, verdict.describe()
