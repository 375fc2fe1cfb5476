"""Where a model from S3 is kept: on disk in MODEL_DIR or in memory, as MODEL_STORE says (``auto`` decides)."""

from __future__ import annotations

from pathlib import Path

from handler.store import cache
from handler.store.cache import MIB
from handler.store.manifest import FileEntry


def choose_store(
    mode: str, *, snapstart: bool, cache_root: Path, target: Path, digest: str, files: tuple[FileEntry, ...]
) -> tuple[str, str]:
    """``disk`` or ``memory`` for MODEL_STORE=``mode``, and why (for the log).

    ``auto``: memory under SnapStart (its ``/tmp`` is at most 512 MB and the snapshot holds the loaded model,
    so a disk copy would be a second one) and when MODEL_DIR's filesystem has no room for the files; disk
    otherwise, which keeps a verified copy for the next init in the sandbox and a lower memory peak.
    """
    if mode != "auto":
        return mode, f"MODEL_STORE={mode}"
    if snapstart:
        return "memory", "SnapStart: the snapshot holds the loaded model; /tmp is at most 512 MB"
    if cache.is_verified(target, digest, files, rehash=False):
        return "disk", "a verified copy is in MODEL_DIR"
    needed, free = cache.space_needed(files), cache.free_space(cache_root)
    if needed > free:
        return "memory", f"the files need {needed / MIB:,.0f} MiB, MODEL_DIR has {free / MIB:,.0f} MiB free"
    return "disk", f"MODEL_DIR has room ({free / MIB:,.0f} MiB free)"
