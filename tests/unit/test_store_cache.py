"""handler.store.cache: what makes a cached model trusted, what cleaning removes, and the space checks."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from handler.store import cache
from handler.store.errors import DownloadFailed, InsufficientStorage
from handler.store.manifest import MANIFEST_NAME, MARKER_NAME, FileEntry

DIGEST = "ab" * 32
RAW = b'{"manifest": "bytes"}'
FILES = {"config.json": b"{}", "model.onnx": b"weights" * 100}


def entries() -> tuple[FileEntry, ...]:
    return tuple(
        FileEntry(key, len(data), hashlib.sha256(data).hexdigest(), ("onnx-fp32",))
        for key, data in FILES.items()
    )


def verified_copy(root: Path) -> Path:
    """A model directory as a warm-up leaves it: the files, the manifest and the marker."""
    target = cache.entry_dir(root, DIGEST, "onnx-fp32")
    target.mkdir(parents=True)
    for key, data in FILES.items():
        (target / key).write_bytes(data)
    hashes = {f.key: f.sha256 for f in entries()}
    cache.write_marker(target, RAW, DIGEST, entries(), hashes)
    return target


def test_the_entry_is_named_after_the_manifest_and_variant(tmp_path: Path) -> None:
    assert cache.entry_dir(tmp_path, DIGEST, "torch") == tmp_path / f"{DIGEST[:16]}-torch"


def test_a_fresh_copy_is_verified(tmp_path: Path) -> None:
    target = verified_copy(tmp_path)
    assert (target / MANIFEST_NAME).read_bytes() == RAW
    assert cache.is_verified(target, DIGEST, entries(), rehash=False)
    assert cache.is_verified(target, DIGEST, entries(), rehash=True)


def test_another_manifest_or_a_missing_marker_is_not_trusted(tmp_path: Path) -> None:
    target = verified_copy(tmp_path)
    assert not cache.is_verified(target, "cd" * 32, entries(), rehash=False)
    (target / MARKER_NAME).write_text("{not json")
    assert not cache.is_verified(target, DIGEST, entries(), rehash=False)
    (target / MARKER_NAME).unlink()
    assert not cache.is_verified(target, DIGEST, entries(), rehash=False)


def test_a_touched_or_missing_file_is_not_trusted(tmp_path: Path) -> None:
    target = verified_copy(tmp_path)
    weights = target / "model.onnx"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert not cache.is_verified(target, DIGEST, entries(), rehash=False)
    weights.unlink()
    assert not cache.is_verified(target, DIGEST, entries(), rehash=False)


def test_rehash_catches_a_change_that_kept_size_and_mtime(tmp_path: Path) -> None:
    target = verified_copy(tmp_path)
    weights = target / "model.onnx"
    stat = weights.stat()
    weights.write_bytes(b"W" * stat.st_size)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert cache.is_verified(target, DIGEST, entries(), rehash=False)  # the cheap check is fooled
    assert not cache.is_verified(target, DIGEST, entries(), rehash=True)


def test_clean_removes_staging_leftovers_and_other_models_only(tmp_path: Path) -> None:
    old = verified_copy(tmp_path)
    staging = tmp_path / f"{cache.STAGING_PREFIX}killed"
    staging.mkdir()
    (staging / "part").write_bytes(b"x")
    mine = tmp_path / "notes"  # not the cache's: left alone
    mine.mkdir()
    (tmp_path / "readme.txt").write_text("keep")
    cache.clean(tmp_path)
    assert not old.exists() and not staging.exists()
    assert mine.is_dir() and (tmp_path / "readme.txt").is_file()


class Usage(NamedTuple):
    total: int
    used: int
    free: int


def test_check_space_names_the_ephemeral_storage_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = (FileEntry("model.onnx", 600 * cache.MIB, "0" * 64, ("onnx-fp32",)),)
    monkeypatch.setattr(
        shutil, "disk_usage", lambda _: Usage(512 * cache.MIB, 12 * cache.MIB, 500 * cache.MIB)
    )
    with pytest.raises(
        InsufficientStorage, match=r"needs 616 MiB .* only 500 MiB are free; .* at least 1024 MB"
    ):
        cache.check_space(tmp_path, files)
    monkeypatch.setattr(shutil, "disk_usage", lambda _: Usage(2048 * cache.MIB, 0, 2048 * cache.MIB))
    cache.check_space(tmp_path, files)  # room enough: no error
    assert cache.space_needed(files) == 616 * cache.MIB


def test_free_space_of_a_root_not_yet_made_creates_nothing(tmp_path: Path) -> None:
    root = tmp_path / "a" / "b" / "models"
    assert cache.free_space(root) == shutil.disk_usage(tmp_path).free
    assert not (tmp_path / "a").exists()


def test_an_unusable_cache_root_names_the_fix(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with (
        pytest.raises(DownloadFailed, match=r"is not writable .* use a path under /tmp"),
        cache.locked(blocker / "models"),
    ):
        pass


def test_locked_makes_the_root(tmp_path: Path) -> None:
    root = tmp_path / "models"
    with cache.locked(root):
        assert root.is_dir()
