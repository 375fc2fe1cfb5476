"""The local cache of warmed models (Lambda: /tmp/models): one verified copy, reused across inits.

A model directory is named after its manifest's sha256 and variant and holds a marker of what was verified
(size, sha256 and mtime of every file); a directory without a matching marker is never trusted. Warm-ups that
share a cache root take turns (a file lock), and each one removes what killed warm-ups and older models left.
"""

from __future__ import annotations

import fcntl
import json
import math
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from handler import variants
from handler.store.errors import DownloadFailed, InsufficientStorage
from handler.store.manifest import MANIFEST_NAME, MARKER_NAME, FileEntry, sha256_file

MIB = 1 << 20
STAGING_PREFIX = ".staging-"
_LOCK_NAME = ".lock"
# Room for the marker, the manifest copy and filesystem overhead beyond the files themselves.
_SPACE_MARGIN = 16 * MIB
_LAMBDA_MAX_EPHEMERAL_MB = 10240


def entry_dir(cache_root: Path, manifest_sha256: str, variant: str) -> Path:
    return cache_root / f"{manifest_sha256[:16]}-{variant}"


@contextmanager
def locked(cache_root: Path) -> Iterator[None]:
    """Serialise warm-ups sharing a cache root (one per Lambda sandbox; several in local development)."""
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        lock = (cache_root / _LOCK_NAME).open("a")
    except OSError as exc:
        raise DownloadFailed(
            f"MODEL_DIR={cache_root} is not writable ({exc}); on Lambda use a path under /tmp"
        ) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def is_verified(target: Path, digest: str, files: tuple[FileEntry, ...], *, rehash: bool) -> bool:
    """True if ``target`` holds exactly the manifest's files, unchanged since they were hashed."""
    try:
        marker = json.loads((target / MARKER_NAME).read_bytes())
        if marker.get("manifest_sha256") != digest:
            return False
        for entry in files:
            path, recorded = target / entry.key, marker["files"][entry.key]
            stat = path.stat()
            if stat.st_size != entry.size or stat.st_mtime_ns != recorded["mtime_ns"]:
                return False
            if rehash and sha256_file(path) != entry.sha256:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def clean(cache_root: Path) -> None:
    """Drop staging leftovers of killed warm-ups and copies of other manifests: one model per cache."""
    ours = re.compile(rf"[0-9a-f]{{16}}-({'|'.join(map(re.escape, variants.NAMES))})")
    for entry in cache_root.iterdir():
        if entry.is_dir() and (entry.name.startswith(STAGING_PREFIX) or ours.fullmatch(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)


def space_needed(files: tuple[FileEntry, ...]) -> int:
    return sum(f.size for f in files) + _SPACE_MARGIN


def free_space(cache_root: Path) -> int:
    """Free bytes on the filesystem that holds (or would hold) ``cache_root``; nothing is created."""
    path = cache_root.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def check_space(cache_root: Path, files: tuple[FileEntry, ...]) -> None:
    needed = space_needed(files)
    usage = shutil.disk_usage(cache_root)
    if usage.free >= needed:
        return
    # Lambda's /tmp is a filesystem of EphemeralStorage size: what is used now, plus the model, plus 10%.
    suggested = max(512, math.ceil((usage.used + needed * 1.1) / MIB / 512) * 512)
    raise InsufficientStorage(
        f"the model needs {needed / MIB:,.0f} MiB in MODEL_DIR={cache_root} but only {usage.free / MIB:,.0f} "
        f"MiB are free; set the function's EphemeralStorage Size to at least {suggested} MB "
        f"(max {_LAMBDA_MAX_EPHEMERAL_MB})"
    )


def write_marker(
    staging: Path, raw: bytes, digest: str, files: tuple[FileEntry, ...], hashes: dict[str, str]
) -> None:
    (staging / MANIFEST_NAME).write_bytes(raw)
    recorded = {
        f.key: {"size": f.size, "sha256": hashes[f.key], "mtime_ns": (staging / f.key).stat().st_mtime_ns}
        for f in files
    }
    marker = {"manifest_sha256": digest, "files": recorded}
    (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
