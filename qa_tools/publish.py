"""Publish a model for the function: ``python -m qa_tools.publish SOURCE s3://bucket/prefix/``.

SOURCE is a local model directory or a Hugging Face model id (downloaded with huggingface_hub; needs
internet). The model is normalised (safetensors weights, fast ``tokenizer.json``, config), each requested
variant with a builder (``handler.variants``: the ONNX exports) is built, every file is hashed into ``manifest.json``, and files are uploaded concurrently
with a progress bar. The manifest goes up LAST: until then the warm-up sees the previous model (or none),
never a half-published one. Files whose object already has the same size and sha256 are skipped, so
re-publishing the same model uploads nothing and an interrupted publish resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.subscribers import BaseSubscriber
from tqdm import tqdm

from handler import variants as registry
from handler.store.manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestError, check_key, variants_for
from handler.store.s3 import S3Location, make_client

# Object metadata carrying our hash: lets a re-publish skip identical objects without downloading them.
SHA256_METADATA = "sha256"
# Weights the runtime never reads (pickles, TF, Flax): not uploaded, so nothing unsafe is ever loaded.
_LEGACY_WEIGHTS = (".bin", ".h5", ".msgpack", ".ot", ".pt", ".pth", ".ckpt", ".pkl")
_CONCURRENCY = 8
# Variants made at publish time (exports); their files in SOURCE are never uploaded as they are.
_BUILT = {v.name for v in registry.VARIANTS.values() if v.builder}


@dataclass(frozen=True)
class PublishResult:
    manifest: Manifest
    uploaded: tuple[str, ...]
    skipped: tuple[str, ...]  # already in the bucket with the same size and sha256
    manifest_uploaded: bool  # False when the bucket already had this exact manifest


def publish(
    source: str,
    s3_uri: str,
    *,
    variants: Sequence[str] = registry.NAMES,
    name: str | None = None,
    revision: str | None = None,
    client: BaseClient | None = None,
    progress: bool = True,
) -> PublishResult:
    """Normalise ``source``, export the requested variants, and upload them with a manifest to ``s3_uri``."""
    unknown = set(variants) - set(registry.NAMES)
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {','.join(registry.NAMES)}, got {variants}")
    location = S3Location.parse(s3_uri)
    client = client or make_client(max_pool_connections=_CONCURRENCY + 2)
    model_dir, default_name, default_revision = _resolve_source(source, revision)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        staging = Path(tmp)
        if not _is_normalised(model_dir):
            model_dir = _normalise(model_dir, staging / "model")
        paths = _select_files(model_dir, variants)
        paths.update(_build(model_dir, staging / "built", variants))
        _log(f"hashing {len(paths)} files ...")
        manifest = Manifest.build(name or default_name, revision or default_revision, paths)
        return _upload(client, location, manifest, paths, progress=progress)


# --- source --------------------------------------------------------------------------------------------
def _resolve_source(source: str, revision: str | None) -> tuple[Path, str, str]:
    """A local directory, or a Hub model id fetched into the HF cache (its commit hash is the revision)."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path, path.resolve().name, "local"
    if path.exists() or source.count("/") > 1 or source.startswith((".", "/", "~")):
        raise ValueError(f"SOURCE {source!r} is neither a model directory nor a Hugging Face model id")
    from huggingface_hub import snapshot_download  # only for Hub ids: needs internet

    _log(f"downloading {source} from the Hugging Face Hub ...")
    try:
        snapshot = Path(snapshot_download(source, revision=revision))
    except Exception as exc:  # the hub raises many types (offline, unknown repo, gated): one clear message
        raise ValueError(f"could not fetch {source!r} from the Hugging Face Hub: {exc}") from exc
    return snapshot, source, snapshot.name  # snapshots/<commit sha>


def _is_normalised(model_dir: Path) -> bool:
    names = {p.name for p in model_dir.iterdir() if p.is_file()}
    has_weights = "model.safetensors" in names or "model.safetensors.index.json" in names
    return {"config.json", "tokenizer.json"} <= names and has_weights


def _normalise(source: Path, out: Path) -> Path:
    """Re-save with transformers: safetensors weights, a fast tokenizer's tokenizer.json, the config."""
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    _log(f"normalising {source} (safetensors, fast tokenizer) ...")
    tokenizer = AutoTokenizer.from_pretrained(source)  # local: Hub ids were fetched by revision  # nosec B615
    if not tokenizer.is_fast:
        raise ValueError(f"{source}: no fast tokenizer (tokenizer.json) can be built for this model")
    model = AutoModelForQuestionAnswering.from_pretrained(source)  # a local directory, as above  # nosec B615
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def _select_files(model_dir: Path, variants: Sequence[str]) -> dict[str, Path]:
    """Top-level files the requested variants need; a built variant's files are always rebuilt, never copied."""
    chosen: dict[str, Path] = {}
    for path in sorted(model_dir.iterdir()):
        if not path.is_file() or path.name.startswith(".") or path.name == MANIFEST_NAME:
            continue  # a warmed copy as SOURCE: its manifest and marker are rebuilt, not uploaded
        needed_by = set(variants_for(path.name))
        legacy = path.suffix in _LEGACY_WEIGHTS
        if legacy or not needed_by & set(variants) or needed_by <= _BUILT:
            _log(f"  not published: {path.name}")
            continue
        chosen[check_key(path.name)] = path
    return chosen


def _build(model_dir: Path, out: Path, variants: Sequence[str]) -> dict[str, Path]:
    """Runs the builder of each requested variant that has one (in registry order: a builder may reuse another's
    output in ``out``)."""
    built: dict[str, Path] = {}
    for variant in registry.VARIANTS.values():
        if variant.name not in variants or variant.builder is None:
            continue
        try:
            builder = registry.resolve(variant.builder)
        except ImportError as exc:
            raise ValueError(
                f"cannot build {variant.name} here ({exc}); publish with --variants torch"
            ) from exc
        _log(f"building {variant.name} ...")
        path = builder(model_dir, out)
        built[path.name] = path
    return built


# --- upload --------------------------------------------------------------------------------------------
class _Progress(BaseSubscriber):
    def __init__(self, bar: tqdm) -> None:
        self._bar = bar

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        self._bar.update(bytes_transferred)


def _already_there(client: BaseClient, location: S3Location, entry: FileEntry) -> bool:
    try:
        head = client.head_object(Bucket=location.bucket, Key=location.key(entry.key))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    same_hash = head.get("Metadata", {}).get(SHA256_METADATA) == entry.sha256
    return head["ContentLength"] == entry.size and same_hash


def _current_manifest(client: BaseClient, location: S3Location) -> bytes | None:
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_NAME))["Body"].read()
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
            return None
        raise


def _upload(
    client: BaseClient, location: S3Location, manifest: Manifest, paths: dict[str, Path], *, progress: bool
) -> PublishResult:
    todo = [e for e in manifest.files if not _already_there(client, location, e)]
    skipped = tuple(e.key for e in manifest.files if e not in todo)
    for key in skipped:
        _log(f"  unchanged, skipped: {key}")
    config = TransferConfig(max_concurrency=_CONCURRENCY, preferred_transfer_client="classic")
    total = sum(e.size for e in todo)
    bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc="upload", file=sys.stderr,
               disable=None if progress else True)  # fmt: skip
    with bar, create_transfer_manager(client, config) as manager:
        futures = [
            manager.upload(
                str(paths[e.key]), location.bucket, location.key(e.key),
                extra_args={"Metadata": {SHA256_METADATA: e.sha256}}, subscribers=[_Progress(bar)],
            )
            for e in todo
        ]  # fmt: skip
        for future in futures:
            future.result()
    body = manifest.to_json()
    manifest_uploaded = _current_manifest(client, location) != body
    if manifest_uploaded:  # last: the new model becomes visible only now, complete
        client.put_object(
            Bucket=location.bucket, Key=location.key(MANIFEST_NAME), Body=body,
            ContentType="application/json", CacheControl="no-cache",
        )  # fmt: skip
    return PublishResult(manifest, tuple(e.key for e in todo), skipped, manifest_uploaded)


# --- CLI -----------------------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m qa_tools.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="local model directory or Hugging Face model id (needs internet)")
    parser.add_argument("s3_uri", help="destination, s3://bucket/prefix/")
    parser.add_argument(
        "--variants",
        default=",".join(registry.NAMES),
        help=f"comma-separated backend variants to publish (default: {','.join(registry.NAMES)})",
    )
    parser.add_argument("--name", help="model name in the manifest (default: the Hub id or directory name)")
    parser.add_argument(
        "--revision", help="Hub revision to fetch, or the one to record (default: commit or 'local')"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    try:
        result = publish(
            args.source, args.s3_uri, variants=variants, name=args.name, revision=args.revision,
            progress=not args.no_progress,
        )  # fmt: skip
    except (ValueError, ManifestError, OSError) as exc:
        _log(f"error: {exc}")
        return 2
    except (ClientError, BotoCoreError) as exc:
        _log(f"error: S3: {exc}")
        return 1
    summary = {
        "s3_uri": S3Location.parse(args.s3_uri).uri(),
        "model": result.manifest.name,
        "revision": result.manifest.revision,
        "variants": list(result.manifest.variants),
        "uploaded": list(result.uploaded),
        "skipped": list(result.skipped),
        "manifest": "uploaded" if result.manifest_uploaded else "unchanged",
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
