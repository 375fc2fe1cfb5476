"""A fresh clone answers offline: the README's quick start (``bash scripts/demo.sh``) in an empty folder, with no
``../shared`` beside it and no Hugging Face hub (``HF_HUB_OFFLINE=1``, an empty ``HF_HOME``), gets a real answer
from the embedded model (models/minilm-l6-squad) to the sample event's question.

The clone is ``git clone`` of this checkout, so it holds the COMMITTED state (HEAD): uncommitted changes are not
seen, and a file the quick start needs but that was never committed fails here, as it would for a new user.
The one thing not fresh is the virtual environment: ``VENV`` (which scripts/demo.sh honours) points the
script at the one running this test, so nothing is installed (tests/infra covers the installing path).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.fixtures import ROOT


def test_a_fresh_clone_answers_the_quick_start_offline(tmp_path: Path) -> None:
    empty = tmp_path / "empty"  # nothing else in it: no ../shared beside the clone
    clone = empty / "lambda-extractive-qa"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    assert not (empty.parent / "shared").exists() and sorted(p.name for p in empty.iterdir()) == [clone.name]

    home, tmp = tmp_path / "home", tmp_path / "tmp"
    for folder in (home, tmp):
        folder.mkdir()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(home / "huggingface"),  # no cached hub models either
        "VENV": str(Path(sys.prefix).resolve()),  # this test's environment, used as it is
    }
    done = subprocess.run(
        ["bash", "scripts/demo.sh"],  # the README's first command, exactly
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert not (clone / ".venv").exists(), "the set-up ran: VENV was not honoured"
    assert "minilm-l6-squad" in done.stderr  # the embedded model was the one published and loaded
    answer = json.loads(done.stdout)  # stdout is exactly the answer JSON
    event = json.loads((clone / "events" / "rest-predict.json").read_text())
    request = json.loads(event["body"])
    assert request["context"][answer["start"] : answer["end"]] == answer["answer"]
    # "How large is the Amazon rainforest?": the trained model finds the size, not just any span.
    assert "5.5 million square kilometres" in answer["answer"], answer
    assert not list(tmp.iterdir()), f"left behind: {list(tmp.iterdir())}"
