"""The old arm64 Lambda crash (onnxruntime issues 10038 and 15650): ``/sys/devices/system/cpu/possible``
unreadable. With the pinned onnxruntime, cpuinfo reports the error and the function still answers, the same."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from qa_tools.emulation import arm64_env, check, run
from qa_tools.emulation.machines import GRAVITON2
from tests.emulation.conftest import require

pytestmark = pytest.mark.emulation
QUESTIONS = 2


def test_answers_when_cpu_possible_is_unreadable(
    served_model: Path, short_questions: list[dict[str, str]], native: dict[str, Any], emulation_log: Any
) -> None:
    require(GRAVITON2)
    root = arm64_env.ensure(log=emulation_log).root
    # qemu -L resolves the guest's paths under root first: a directory there makes the file unreadable (EISDIR),
    # on a tmpfs private to this run's mount namespace.
    prelude = [f"mount -t tmpfs tmpfs {root}/sys", f"mkdir -p {root}/sys/devices/system/cpu/possible"]
    asked = short_questions[:QUESTIONS]
    report = run.ask(GRAVITON2, served_model, ["onnx-int8"], asked, prelude=prelude, log=emulation_log)
    assert "/sys/devices/system/cpu/possible" in report["stderr"]  # the condition really happened
    assert "Error in cpuinfo" in report["stderr"]
    expected = {q["id"]: native["results"]["onnx-int8"]["answers"][q["id"]] for q in asked}
    verdict = check.compare(GRAVITON2.name, "onnx-int8", expected, report["results"]["onnx-int8"]["answers"])
    assert verdict.passed, verdict.describe()
    assert not (root / "sys" / "devices").exists()  # the tmpfs stayed in the namespace
