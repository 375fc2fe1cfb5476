"""scripts/setup.sh: pip runs when a requirements file changed, not on every demo or test run.

The real script against a stand-in .venv whose python records how it is called (no packages are installed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
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


# --------------------------------------------------------------------------------------------- test.sh
SCRATCH_TEST = """
import tempfile


def test_writes_where_tests_and_libraries_write(tmp_path):
    (tmp_path / "result.bin").write_bytes(b"x" * 1024)  # pytest's tmp_path
    tempfile.mkstemp(prefix="onnxruntime-like-")  # a library's scratch file in $TMPDIR, never removed
    assert {passes}
"""


@pytest.fixture
def test_checkout(tmp_path: Path) -> Path:
    """The real scripts/test.sh; set-up, SAM, ruff, mkdocs and the onnx run are stubs, pytest is real on a tiny
    suite."""
    checkout = tmp_path / "checkout"
    (checkout / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "test.sh", checkout / "scripts")
    for stub in ("setup.sh", "install-sam.sh", "install-emulators.sh"):
        (checkout / "scripts" / stub).write_text("exit 0\n")
    (checkout / "scripts" / "test-onnx.sh").write_text(  # what the onnx run writes, and how it is called
        'touch "$TMPDIR/onnx-scratch"\necho "$*" > "$(dirname "$0")/onnx-args"\n'
    )
    bin_dir = checkout / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "ruff").write_text("#!/bin/sh\nexit 0\n")
    (bin_dir / "mkdocs").write_text(
        '#!/bin/sh\nfor a; do d="$a"; done\nmkdir -p "$d" && touch "$d/index.html"\n'
    )
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for tool in ("ruff", "mkdocs", "python"):
        (bin_dir / tool).chmod(0o755)
    (checkout / "tests").mkdir()
    return checkout


@pytest.mark.parametrize("passes", [True, False])
def test_the_test_command_leaves_nothing_in_tmpdir(test_checkout: Path, tmp_path: Path, passes: bool) -> None:
    (test_checkout / "tests" / "test_scratch.py").write_text(SCRATCH_TEST.format(passes=passes))
    caller_tmp = tmp_path / "callers-tmp"
    caller_tmp.mkdir()
    done = subprocess.run(
        ["bash", "scripts/test.sh", "-p", "no:cacheprovider", "tests"], cwd=test_checkout,
        env={"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TMPDIR": str(caller_tmp)},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert (done.returncode == 0) is passes, done.stdout + done.stderr
    assert "1 passed" in done.stdout if passes else "1 failed" in done.stdout
    assert not list(caller_tmp.iterdir()), "the run's scratch directory is removed, pass or fail"
    if passes:  # the onnx run gets its own pytest directory inside the run's
        args = (test_checkout / "scripts" / "onnx-args").read_text().split()
        assert args[0].startswith(f"--basetemp={caller_tmp}/qa-tests.") and args[0].endswith("/pytest-onnx")
