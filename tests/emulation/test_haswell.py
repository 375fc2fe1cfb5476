"""An emulated Haswell (AVX2, no AVX-512, VNNI or AMX: the least Lambda's x86 hosts promise) runs this machine's
interpreter unchanged, so ONNX Runtime takes its AVX2 kernels: the int8 variants against native answers.

NumPy's AVX2 kernels are off inside (``qa_tools.emulation.machines``): qemu 7.2 misexecutes NumPy's AVX2 sort,
which once made ``onnx-int8`` look wrong here (four clear answers lost their best span while ONNX Runtime's logits
were native's). ``test_numpy_sorts_right_under_the_emulation`` holds the harness to that.
"""

from __future__ import annotations

import subprocess
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


def _verdict(report: dict[str, Any], native: dict[str, Any], variant: str) -> check.Verdict:
    asked = report["results"][variant]["answers"]
    expected = {qid: native["results"][variant]["answers"][qid] for qid in asked}
    return check.compare(HASWELL.name, variant, expected, asked)


@pytest.mark.parametrize("variant", INT8)
def test_same_answers_as_native(haswell: dict[str, Any], native: dict[str, Any], variant: str) -> None:
    verdict = _verdict(haswell, native, variant)
    assert len(verdict.agreements) == HASWELL_QUESTIONS
    assert verdict.passed, verdict.describe()


def test_fp32_matches_native_so_the_emulation_is_sound(
    served_model: Path, short_questions: list[dict[str, str]], native: dict[str, Any], emulation_log: Any
) -> None:
    """fp32 on a clear question: AVX2/FMA float kernels, emulated, give native's scores."""
    require(HASWELL)
    asked = [q for q in short_questions if q["id"] == "p03-q1"]
    report = run.ask(HASWELL, served_model, ["onnx-fp32"], asked, log=emulation_log)
    verdict = _verdict(report, native, "onnx-fp32")
    assert verdict.passed, verdict.describe()
    got = report["results"]["onnx-fp32"]["answers"]["p03-q1"][0]["score"]
    assert got == pytest.approx(native["results"]["onnx-fp32"]["answers"]["p03-q1"][0]["score"], abs=1e-4)


SORT_CHECK = """
import numpy as np
rng = np.random.default_rng(0)
wrong = 0
for _ in range(50):
    x = rng.random(int(rng.integers(50, 3000))).astype(np.float32)
    k = int(rng.integers(1, 40))
    wrong += not np.array_equal(np.sort(x[np.argpartition(-x, k - 1)[:k]]), np.sort(x)[::-1][:k][::-1])
    wrong += not np.array_equal(x[np.argsort(x)], np.sort(x, kind="stable"))
print(wrong)
"""


def test_numpy_sorts_right_under_the_emulation() -> None:
    """The span decoder's argpartition, as the emulated Haswell runs it (qemu 7.2 gets NumPy's AVX2 sort wrong)."""
    require(HASWELL)
    done = subprocess.run(
        run.command(HASWELL, ["-c", SORT_CHECK]), capture_output=True, text=True, check=True, timeout=600
    )
    assert done.stdout.split() == ["0"], done.stdout + done.stderr[-2000:]
