"""Getting the benchmark model into the local S3: ours with ``qa_tools.publish``, the seeds' as a plain folder.

ONNX export of a RoBERTa-base takes one to three minutes here, and ``publish`` re-exports on every call (it
never trusts ONNX files it did not make). Across benchmark runs the same weights give the same graphs, so
``cached_export`` keeps them in the work directory keyed by the weights' and exporter's hashes and hands
``publish`` hard links; everything else (hashing, manifest, uploads) is the real publish.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

import qa_tools.export
from handler import variants
from handler.store.manifest import sha256_file
from qa_tools.publish import publish


def _cache_key(model_dir: Path, builder: str) -> str:
    h = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.iterdir() if p.suffix in (".safetensors", ".json")):
        h.update(name.encode() + sha256_file(model_dir / name).encode())
    h.update(Path(qa_tools.export.__file__).read_bytes())  # a change to the exporter invalidates the cache
    h.update(builder.encode())
    return h.hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextmanager
def cached_export(cache_root: Path) -> Iterator[None]:
    """Within the block, the variant builders of ``qa_tools.export`` (what publish calls) reuse earlier exports."""
    built = {v.builder.partition(":")[2]: v.weight_file for v in variants.VARIANTS.values() if v.builder}
    originals = {name: getattr(qa_tools.export, name) for name in built}

    def cached(name: str) -> Callable[[Path, Path], Path]:
        def build(model_dir: Path, out_dir: Path) -> Path:
            cache = cache_root / _cache_key(Path(model_dir), name)
            if not (cache / ".complete").is_file():
                shutil.rmtree(cache, ignore_errors=True)
                originals[name](model_dir, cache)
                (cache / ".complete").write_text("ok\n", encoding="utf-8")
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            target = Path(out_dir) / built[name]
            if not target.exists():
                _link_or_copy(cache / built[name], target)
            return target

        return build

    for name in built:
        setattr(qa_tools.export, name, cached(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(qa_tools.export, name, original)


def publish_ours(model_dir: Path, uri: str, cache_root: Path) -> None:
    """Every backend variant under one prefix: each cold start fetches only its own variant's files."""
    with cached_export(cache_root):
        publish(
            str(model_dir), uri, variants=variants.NAMES, name="roberta-base-squad2-shaped", progress=False
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
