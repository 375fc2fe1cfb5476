"""Fixtures of the emulation checks: the machines (missing ones fail under CI, skip elsewhere), the model and the
native answers every emulated run is compared with.

The model: the embedded ``models/minilm-l6-squad``. Until that directory is on this branch, the same model from
``../shared/models/minilm-l6-squad`` (or $QA_EMULATION_MODEL) stands in, and only when the embedded one is absent.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from qa_tools.emulation import model, questions, run
from qa_tools.emulation.arm64_env import REPO
from qa_tools.emulation.machines import Machine

# Short probe questions (two-sentence contexts): int8 on an emulated Graviton2 costs seconds per window.
GRAVITON2_QUESTIONS = 20
# An emulated Haswell is slower still (45 s for one 128-token int8 window): a handful.
HASWELL_QUESTIONS = 4
VARIANTS = ("onnx-fp32", "onnx-int8", "onnx-int8-fast")
_SHARED_MODEL = REPO.parent / "shared" / "models" / "minilm-l6-squad"


def _unavailable(reason: str) -> None:
    """Under CI a missing emulator is a failure (the check must run there); elsewhere a skip that says why."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}: the emulation checks must run in CI", pytrace=False)
    pytest.skip(reason)


def require(machine: Machine) -> Machine:
    missing = machine.missing()
    if missing:
        _unavailable(f"cannot emulate {machine.name}: missing {', '.join(missing)}")
    return machine


def _log(message: str) -> None:
    if not message.startswith("{"):  # the function's JSON log lines stay in the captured stderr
        print(message, file=sys.stderr, flush=True)


@pytest.fixture(scope="session")
def emulation_log() -> Any:
    return _log


@pytest.fixture(scope="session")
def source_model() -> Path:
    if (model.EMBEDDED / "config.json").is_file() or os.environ.get(model.MODEL_ENV):
        return model.source()
    if (_SHARED_MODEL / "config.json").is_file():  # before the embedded model is merged
        return model.source(_SHARED_MODEL)
    _unavailable(f"no model: neither {model.EMBEDDED} nor ${model.MODEL_ENV} is a model directory")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def served_model(source_model: Path) -> Path:
    """The ONNX variants, built natively once (cached across runs)."""
    return model.prepared(source_model, log=_log)


@pytest.fixture(scope="session")
def short_questions() -> list[dict[str, str]]:
    return questions.short_questions(GRAVITON2_QUESTIONS)


@pytest.fixture(scope="session")
def native(served_model: Path, short_questions: list[dict[str, str]]) -> dict[str, Any]:
    """This machine's answers, every variant, every question: what emulated answers are compared with."""
    return run.ask(None, served_model, VARIANTS, short_questions, log=_log)
