"""An emulated Graviton2 (arm64, asimd dot product) serves the onnx image's exact dependencies from the lock and
answers like this x86 machine: int8 (ONNX Runtime's arm64 dot-product kernels) and fp32."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qa_tools.emulation import check, run
from qa_tools.emulation.machines import GRAVITON2
from tests.emulation.conftest import require

pytestmark = pytest.mark.emulation


@pytest.fixture(scope="module")
def graviton2(
    served_model: Path, short_questions: list[dict[str, str]], emulation_log: Any
) -> dict[str, Any]:
    require(GRAVITON2)
    return run.ask(GRAVITON2, served_model, ["onnx-int8", "onnx-fp32"], short_questions, log=emulation_log)


def test_runs_on_arm64_with_graviton2_cpuinfo(graviton2: dict[str, Any]) -> None:
    assert graviton2["machine"] == "aarch64"
    assert graviton2["cpu"]["model"] == "Neoverse N1 (Graviton2)"
    assert graviton2["cpu"]["int8"] == ["asimddp"]  # dot product, no i8mm: the Graviton2 kernels


@pytest.mark.parametrize("variant", ["onnx-int8", "onnx-fp32"])
def test_same_answers_as_native(graviton2: dict[str, Any], native: dict[str, Any], variant: str) -> None:
    verdict = check.compare(
        GRAVITON2.name,
        variant,
        native["results"][variant]["answers"],
        graviton2["results"][variant]["answers"],
    )
    assert len(verdict.agreements) == len(native["results"][variant]["answers"]) >= 20
    assert verdict.passed, verdict.describe()


def test_fp32_scores_agree_closely(graviton2: dict[str, Any], native: dict[str, Any]) -> None:
    """fp32 has no CPU-specific quantization: scores differ only by float rounding (measured ~1e-5)."""
    emulated = graviton2["results"]["onnx-fp32"]["answers"]
    for qid, answers in native["results"]["onnx-fp32"]["answers"].items():
        assert emulated[qid][0]["score"] == pytest.approx(answers[0]["score"], abs=1e-3), qid
