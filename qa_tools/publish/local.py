"""Publish into a local directory (MODEL_LOCAL_PATH, the image's ``baked`` target): the same files and manifest,
written beside the target and swapped in whole; only an earlier publish is ever replaced."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from handler.store import MANIFEST_NAME, Manifest
from qa_tools.publish.log import log
from qa_tools.publish.result import PublishResult


def local_destination(path: Path) -> Path:
    """Checked before any work: a new or empty directory, or an earlier publish (it holds a manifest)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_NAME).is_file():
        raise ValueError(f"{path} holds other files; publish into a new or empty directory")
    return path


def write_local(target: Path, manifest: Manifest, paths: dict[str, Path]) -> PublishResult:
    """Writes the files and the manifest beside ``target``, then swaps the finished directory in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        for entry in manifest.files:
            shutil.copyfile(paths[entry.key], staging / entry.key)
        (staging / MANIFEST_NAME).write_bytes(manifest.to_json())  # last, as on S3
        staging.chmod(0o755)  # mkdtemp's 0700 would hide the model from an image's other user
        if target.exists():
            previous = target.rename(staging.with_name(staging.name + ".old"))
            staging.rename(target)
            shutil.rmtree(previous)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    log(f"wrote {len(manifest.files)} files and {MANIFEST_NAME} to {target}")
    return PublishResult(
        manifest=manifest, uploaded=tuple(e.key for e in manifest.files), skipped=(), manifest_uploaded=True
    )
