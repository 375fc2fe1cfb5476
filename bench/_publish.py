"""Getting the benchmark model into the local S3: ours with ``qa_tools.publish``, the seeds' as a plain folder.

ONNX export of a RoBERTa-base takes one to three minutes here (and each int8 recipe another minute), and
``publish`` rebuilds on every call (it never trusts ONNX files it did not make). Across benchmark runs the same
weights give the same graphs, so ``cached_export`` keeps every registry builder's output in the work directory,
keyed by the weights' hashes and the builder's source (``qa_tools/export.py`` and the builder's own module, e.g.
``qa_tools/quantize.py``), and hands ``publish`` hard links; everything else (hashing, manifest, uploads) is the
real publish.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3

import qa_tools.export
from handler import variants
from handler.store import sha256_file
from qa_tools.publish import publish

Builder = Callable[[Path, Path], Path]


def _builders() -> dict[str, tuple[str, str, str]]:
    """Each builder the registry names: ``"module:function"`` -> (module, function, the file it writes)."""
    found = {}
    for v in variants.VARIANTS.values():
        if v.builder:
            module, _, function = v.builder.partition(":")
            found[v.builder] = (module, function, v.weight_file)
    return found


def _cache_key(model_dir: Path, builder: str) -> str:
    """Weights, the builder's name, and the source of the fp32 exporter and of the builder's module (e.g.
    ``qa_tools/quantize.py``): a change to any of them invalidates the cache."""
    h = hashlib.sha256()
    for name in sorted(p.name for p in model_dir.iterdir() if p.suffix in (".safetensors", ".json")):
        h.update(name.encode() + sha256_file(model_dir / name).encode())
    module = importlib.import_module(builder.partition(":")[0])
    for source in sorted({Path(qa_tools.export.__file__), Path(str(module.__file__))}):
        h.update(source.read_bytes())
    h.update(builder.encode())
    return h.hexdigest()[:16]


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextmanager
def cached_export(cache_root: Path) -> Iterator[None]:
    """Within the block, every builder the registry names (``qa_tools.export:build_fp32``,
    ``qa_tools.quantize:build_int8``, ...) reuses earlier outputs: publish resolves builders by name at call
    time, and a builder that calls another through its module (the int8 ones call ``export.build_fp32``) gets
    the cached one too."""
    builders = _builders()
    originals: dict[str, Builder] = {
        ref: getattr(importlib.import_module(module), function)
        for ref, (module, function, _) in builders.items()
    }

    def cached(ref: str) -> Builder:
        weight_file = builders[ref][2]

        def build(model_dir: Path, out_dir: Path) -> Path:
            cache = cache_root / _cache_key(Path(model_dir), ref)
            if not (cache / ".complete").is_file():
                shutil.rmtree(cache, ignore_errors=True)
                originals[ref](model_dir, cache)
                (cache / ".complete").write_text("ok\n", encoding="utf-8")
            Path(out_dir).mkdir(parents=True, exist_ok=True)
            target = Path(out_dir) / weight_file
            if not target.exists():
                _link_or_copy(cache / weight_file, target)
            return target

        return build

    for ref, (module, function, _) in builders.items():
        setattr(importlib.import_module(module), function, cached(ref))
    try:
        yield
    finally:
        for ref, (module, function, _) in builders.items():
            setattr(importlib.import_module(module), function, originals[ref])


# The local S3 both recipes are served from in the cold-start and power-tuning runs.
BUCKET = "bench-models"
OURS_URI, SEEDS_URI = f"s3://{BUCKET}/ours/", f"s3://{BUCKET}/seeds/"


def stage(model_dir: Path, cache_root: Path) -> None:
    """Both recipes' copies of ``model_dir`` in the local S3, each published its own way, the server primed."""
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    publish_ours(model_dir, OURS_URI, cache_root)
    upload_folder(model_dir, BUCKET, SEEDS_URI.removeprefix(f"s3://{BUCKET}/"))
    prime_server(BUCKET)


def publish_ours(model_dir: Path, uri: str, cache_root: Path) -> None:
    """Every backend variant under one prefix: each cold start fetches only its own variant's files."""
    with cached_export(cache_root):
        publish(
            str(model_dir),
            uri,
            variants=variants.NAMES,
            name="roberta-base-squad2-shaped",
            progress=False,
            allow_lossy=True,  # random weights: fidelity to fp32 means nothing on this model
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
