"""Where the emulation checks keep what they build once (the arm64 root, the ONNX variants), and how a finished
build enters the cache when two runs may build the same entry at once."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cache_root() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lambda-extractive-qa" / "emulation"


def move_into_cache(scratch: Path, target: Path, marker: str) -> None:
    """Renames a finished build to ``target``. Two runs may build the same entry at once (a test run and a
    command): when the other finished first (``target/marker`` exists) its copy stands and this one is left
    for the caller to delete; an unfinished entry (no marker) is replaced."""
    try:
        scratch.rename(target)
    except OSError:
        if (target / marker).is_file():
            return
        shutil.rmtree(target)
        scratch.rename(target)
