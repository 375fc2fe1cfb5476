"""The demo as a user runs it: ``bash scripts/demo.sh MODEL`` from their own directory, stdout into a file.

The real scripts/demo.sh and scripts/demo.py run against a tiny model built here; only the set-up step (pip,
tested in tests/infra/test_scripts.py) is replaced by a stub that prints, to prove its output stays off stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.fixtures import ROOT
from tests.fixtures.events import assert_answer


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A checkout whose demo.sh is the real one, its python the project's, its setup.sh a stub."""
    copy = tmp_path / "repo"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "demo.sh", copy / "scripts" / "demo.sh")
    (copy / "scripts" / "demo.py").symlink_to(ROOT / "scripts" / "demo.py")  # it finds the real repository
    (copy / "scripts" / "setup.sh").write_text('echo "==> installing requirements-dev.txt into .venv"\n')
    (copy / ".venv" / "bin").mkdir(parents=True)
    python = copy / ".venv" / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    return copy


def run(args: Sequence[str | bytes], cwd: Path, tmp: Path) -> subprocess.CompletedProcess[str]:
    tmp.mkdir(exist_ok=True)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TMPDIR": str(tmp), "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_demo_prints_only_the_answer_and_leaves_nothing_behind(
    repo: Path, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    caller = tmp_path / "work"
    shutil.copytree(tiny_bert_dir, caller / "models" / "tiny")
    question, context = "Who built the tower?", "Engineers built the tower near the station in 1889."
    tmp = tmp_path / "tmp"
    done = run(
        [
            "bash",
            str(repo / "scripts" / "demo.sh"),
            "models/tiny",
            "--question",
            question,
            "--context",
            context,
        ],
        cwd=caller,  # the model path is relative to here, not to the repository
        tmp=tmp,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert_answer(json.loads(done.stdout), context)  # stdout is exactly one JSON document
    assert "==> installing" in done.stderr  # set-up output went to stderr
    assert f"question: {question}" in done.stderr and f"context: {context}" in done.stderr
    assert "model loaded" in done.stderr  # the function's logs, on stderr too
    assert not list(tmp.iterdir()), f"left behind: {list(tmp.iterdir())}"


@pytest.mark.parametrize("given", [["--question", "Who?"], ["--context", "Ada wrote it."]])
def test_question_and_context_go_together(repo: Path, tmp_path: Path, given: list[str]) -> None:
    done = run(
        [str(repo / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "demo.py"), *given],
        tmp_path,
        tmp_path / "t",
    )
    assert done.returncode == 2 and done.stdout == ""
    assert "--question and --context go together" in done.stderr


@pytest.mark.parametrize(
    ("model", "says"),
    [
        ("models/tiny/missing", "pass a directory holding config.json"),
        (
            str(ROOT / "events"),
            f"{ROOT / 'events'} is not a model directory (no config.json)",
        ),  # not a tokenizer error
        ("someone/some-model", "without internet, pass a local model directory"),  # HF_HUB_OFFLINE=1
        ("models/typo", "and there is no directory"),  # a relative path or a Hub id: both are said
    ],
)
def test_a_model_that_cannot_be_found_is_one_clear_line(
    repo: Path, tmp_path: Path, model: str, says: str
) -> None:
    tmp = tmp_path / "tmp"
    done = run(
        [str(repo / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "demo.py"), model], tmp_path, tmp
    )
    assert done.returncode == 2 and done.stdout == ""
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and says in errors[0], done.stderr
    assert "Traceback" not in done.stderr
    assert not list(tmp.iterdir())


@pytest.mark.parametrize("option", ["--question", "--context"])
def test_arguments_are_checked_before_anything_starts(
    repo: Path, tiny_bert_dir: Path, tmp_path: Path, option: str
) -> None:
    """A question that is not UTF-8 is refused at once, not after publish and init."""
    given = {"--question": "Who built it?", "--context": "Engineers built it."}
    args = [os.fsencode(a) for a in (str(ROOT / "scripts" / "demo.py"), str(tiny_bert_dir))]
    for name, value in given.items():  # argv as bytes, one of them not UTF-8
        args += [name.encode(), value.encode() + (b"\xff" if name == option else b"")]
    done = run([str(repo / ".venv" / "bin" / "python"), *args], tmp_path, tmp_path / "tmp")
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr.strip()
        == f"error: {option} is not UTF-8 text: check the encoding of your terminal or of the file it came from"
    )
    assert "==> [1/3]" not in done.stderr  # nothing was published or started
