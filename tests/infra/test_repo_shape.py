"""No large file is tracked outside the embedded model's folder: every clone pays for each byte, and the
diff limit of a submission counts a big file twice if it is added and then removed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.fixtures import ROOT

MAX_TRACKED_BYTES = 2 * 1024 * 1024
# The one place a large tracked file belongs: the small model the repository ships for offline answers.
LARGE_FILES_FOLDER = "models/"


def tracked_files() -> list[str]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, text=True
    ).stdout
    return [name for name in listing.split("\0") if name]


def large_files(root: Path, names: list[str]) -> list[str]:
    sizes = {
        name: (root / name).stat().st_size
        for name in names
        if not name.startswith(LARGE_FILES_FOLDER) and (root / name).is_file()
    }
    return [f"{name} ({size / 1e6:.1f} MB)" for name, size in sizes.items() if size > MAX_TRACKED_BYTES]


def test_no_large_tracked_file_outside_the_model_folder() -> None:
    names = tracked_files()
    assert names, "not a git checkout: the guard needs `git ls-files`"
    assert large_files(ROOT, names) == [], f"tracked files over 2 MB outside {LARGE_FILES_FOLDER}"


def test_guard_sees_a_large_file(tmp_path: Path) -> None:
    """The guard itself: a file just over the limit is reported anywhere but the model folder."""
    names = ["scratch.data", f"{LARGE_FILES_FOLDER}model.safetensors", "small.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        with (tmp_path / name).open("wb") as handle:
            handle.truncate(MAX_TRACKED_BYTES + (name != "small.txt"))
    assert large_files(tmp_path, names) == ["scratch.data (2.1 MB)"]


def test_scratch_files_are_ignored() -> None:
    names = ["b58ad966-ec59-11f1-a2a1-02fc00000001.data", "sym_shape_infer_temp.onnx", "model.onnx"]
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", *names], cwd=ROOT, capture_output=True, text=True
    ).stdout.split()
    assert ignored == names
