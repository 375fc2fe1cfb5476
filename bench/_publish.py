"""Getting the benchmark model into the local S3: ours with ``handler.publish``, the seeds' as a plain folder.

ONNX export of a RoBERTa-base takes one to three minutes here, and ``publish`` re-exports on every call (it
never trusts ONNX files it did not make). Across benchmark runs the same weights give the same graphs, so
``cached_export`` keeps them in the work directory keyed by the weights' and exporter's hashes and hands
``publish`` hard links; everything else (hashing, manifest, uploads) is the real publish.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

import handler.export
from handler.manifest import sha256_file
from handler.publish import publish
from handler.settings import BACKEND_VARIANTS


def _cache_key(model_dir: Path, quantize: bool) -> str:
    h = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.iterdir() if p.suffix in (".safetensors", ".json")):
        h.update(name.encode() + sha256_file(model_dir / name).encode())
    h.update(Path(handler.export.__file__).read_bytes())  # a change to the exporter invalidates the cache
    h.update(b"int8" if quantize else b"fp32")
    return h.hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextmanager
def cached_export(cache_root: Path) -> Iterator[None]:
    """Within the block, ``handler.export.export_onnx`` (what publish calls) reuses earlier exports."""
    original = handler.export.export_onnx

    def export_onnx(model_dir: Path, out_dir: Path, *, quantize: bool = True) -> list[Path]:
        cache = cache_root / _cache_key(Path(model_dir), quantize)
        if not (cache / ".complete").is_file():
            shutil.rmtree(cache, ignore_errors=True)
            original(model_dir, cache, quantize=quantize)
            (cache / ".complete").write_text("ok\n", encoding="utf-8")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        written = []
        for source in sorted(cache.glob("*.onnx")):
            _link_or_copy(source, Path(out_dir) / source.name)
            written.append(Path(out_dir) / source.name)
        return written

    handler.export.export_onnx = export_onnx
    try:
        yield
    finally:
        handler.export.export_onnx = original


def publish_ours(model_dir: Path, uri: str, cache_root: Path) -> None:
    """Every backend variant under one prefix: each cold start fetches only its own variant's files."""
    with cached_export(cache_root):
        publish(
            str(model_dir), uri, variants=BACKEND_VARIANTS, name="roberta-base-squad2-shaped", progress=False
        )


def upload_folder(model_dir: Path, bucket: str, prefix: str) -> int:
    """The seeds' publishing: the save_pretrained folder as is (``aws s3 cp --recursive``). Returns bytes."""
    s3 = boto3.client("s3")
    total = 0
    for path in sorted(model_dir.iterdir()):
        if path.is_file() and not path.name.startswith("."):
            s3.upload_file(str(path), bucket, f"{prefix}{path.name}")
            total += path.stat().st_size
    return total


def prime_server(bucket: str) -> None:
    """One byte of every object, so the server's per-object cache (``_moto``) is filled before timing."""
    s3 = boto3.client("s3")
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            s3.get_object(Bucket=bucket, Key=obj["Key"], Range="bytes=0-0")["Body"].read()
