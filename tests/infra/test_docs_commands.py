"""Every command the README and docs/ show runs as written on a fresh clone: Python through the project's venv.

A bare ``python -m qa_tools.bulk`` runs whatever ``python`` is on the reader's PATH, which has none of the
project's packages (``ModuleNotFoundError: No module named 'aws_lambda_powertools'``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.fixtures import ROOT

DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCED = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
# "python" or "python3" as the command word: at the start of a line, or after ;, &&, ||, |, $( or `
BARE_PYTHON = re.compile(r"(?:^|[;&|`]\s*|\$\(\s*)(python3?(?:\.\d+)?)\s", re.MULTILINE)


def bare_python_commands(markdown: str) -> list[str]:
    """The lines of fenced blocks that start Python from PATH instead of a project interpreter."""
    return [
        line.strip()
        for block in FENCED.findall(markdown)
        for line in block.splitlines()
        if not line.lstrip().startswith("#") and BARE_PYTHON.search(line.split(" #")[0].strip())
    ]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_commands_use_the_project_interpreter(document: Path) -> None:
    assert bare_python_commands(document.read_text()) == [], (
        f"{document.name}: use .venv/bin/python (or .sam-venv/bin/python), as every other example does"
    )


def test_the_check_sees_a_bare_python_and_lets_the_venvs_pass() -> None:
    text = (
        "```bash\npython -m qa_tools.bulk run a b\ncd x && python3 bench/y.py\n"
        ".venv/bin/python -m qa_tools.local invoke e.json\n# python in a comment\n```\n"
        "python -m outside_a_block\n"
    )
    assert bare_python_commands(text) == ["python -m qa_tools.bulk run a b", "cd x && python3 bench/y.py"]
