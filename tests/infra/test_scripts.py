"""scripts/setup.sh: pip runs when a requirements file changed, not on every demo or test run.

The real script against a stand-in .venv whose python records how it is called (no packages are installed).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.fixtures import ROOT


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "setup.sh", tmp_path / "scripts")
    for requirements in ROOT.glob("requirements*.txt"):
        shutil.copy(requirements, tmp_path)
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text('#!/bin/sh\necho "$*" >> "$(dirname "$0")/calls.log"\n[ -z "$FAIL_PIP" ]\n')
    python.chmod(0o755)
    return tmp_path


def setup(checkout: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "scripts/setup.sh"], cwd=checkout, env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True, text=True, check=False,
    )  # fmt: skip


def pip_runs(checkout: Path) -> int:
    log = checkout / ".venv" / "bin" / "calls.log"
    return sum("-m pip install" in line for line in log.read_text().splitlines()) if log.exists() else 0


def test_pip_runs_only_when_a_requirements_file_changed(checkout: Path) -> None:
    assert setup(checkout).returncode == 0 and pip_runs(checkout) == 1
    again = setup(checkout)
    assert again.returncode == 0 and pip_runs(checkout) == 1
    assert "up to date" in again.stdout
    with (checkout / "requirements-onnx.txt").open("a") as f:  # a nested file (-r) counts too
        f.write("tqdm\n")
    assert setup(checkout).returncode == 0 and pip_runs(checkout) == 2


def test_a_failed_install_is_retried_next_time(checkout: Path) -> None:
    assert setup(checkout, FAIL_PIP="1").returncode != 0 and pip_runs(checkout) == 1
    assert setup(checkout).returncode == 0 and pip_runs(checkout) == 2
    assert setup(checkout).returncode == 0 and pip_runs(checkout) == 2


def test_the_reference_venv_gets_transformers_4_57_on_the_project_s_torch_pin(tmp_path: Path) -> None:
    """scripts/make-reference-venv.sh with a stand-in interpreter: what it asks pip for, nothing installed."""
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin"; cp "$0" "$3/bin/python"; exit 0; fi\n'
        'if [ "$1" = "-c" ]; then case "$2" in *torch*) exit 1;; *) echo 4.57.6; exit 0;; esac; fi\n'
        'echo "$*" >> "$(dirname "$0")/pip.log"\n'
    )
    python.chmod(0o755)
    venv = tmp_path / "ref"
    env = {"PATH": "/usr/bin:/bin", "PYTHON": str(python), "REF_VENV": str(venv)}

    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "make-reference-venv.sh")], env=env, capture_output=True, text=True
    )

    assert done.returncode == 0, done.stderr
    pin = next(
        line
        for line in (ROOT / "requirements-torch.txt").read_text().splitlines()
        if line.startswith("torch")
    )
    [call] = (venv / "bin" / "pip.log").read_text().splitlines()
    assert (
        call.startswith("-m pip install") and "transformers==4.57.*" in call.split() and pin in call.split()
    )
    assert "ready: transformers 4.57.6" in done.stdout
