"""Publish a model for the function: ``python -m qa_tools.publish SOURCE s3://bucket/prefix/`` (or ``DIR``).

SOURCE is a local model directory or a Hugging Face model id (downloaded with huggingface_hub; needs
internet). The model is normalised (safetensors weights, fast ``tokenizer.json``, config), each requested
variant with a builder (``handler.variants``: the ONNX exports) is built, each lossy one (int8) is measured
against its reference on the probe set (``qa_tools.fidelity``: refused below the threshold unless
``--allow-lossy``), every file is hashed into ``manifest.json`` with those figures, and files are uploaded
concurrently with a progress bar. The manifest goes up LAST: until then the warm-up sees the previous model
(or none), never a half-published one. Files whose object already has the same size and sha256 are skipped, so
re-publishing the same model uploads nothing and an interrupted publish resumes where it stopped.

A destination without ``s3://`` is a local directory: the same files and manifest, for MODEL_LOCAL_PATH (e.g.
the ONNX variants for ``QA_BACKEND=onnx``) or the image's ``baked`` target. It appears complete or not at all
(written beside it, then renamed), and replaces only an earlier publish, never a directory of other files.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
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
from handler.model_files import directory_problem
from handler.store.manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestError, check_key, variants_for
from handler.store.s3 import S3Location, make_client
from qa_tools.fidelity import gate
from qa_tools.progress import reporter

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
    destination: str,
    *,
    variants: Sequence[str] = registry.PUBLISHED_BY_DEFAULT,
    name: str | None = None,
    revision: str | None = None,
    client: BaseClient | None = None,
    progress: bool = True,
    min_fidelity: float = gate.DEFAULT_THRESHOLD,
    allow_lossy: bool = False,
) -> PublishResult:
    """Normalise ``source``, export the requested variants, and publish them with a manifest to
    ``destination``: ``s3://bucket/prefix/``, or a local directory."""
    unknown = set(variants) - set(registry.NAMES)
    if unknown or not variants:
        raise ValueError(f"variants must be a non-empty subset of {','.join(registry.NAMES)}, got {variants}")
    target = (
        S3Location.parse(destination)
        if "://" in destination
        else _local_destination(Path(destination).expanduser())
    )
    model_dir, default_name, default_revision = _resolve_source(source, revision)
    with tempfile.TemporaryDirectory(prefix="publish-") as tmp:
        staging = Path(tmp)
        if not _is_normalised(model_dir):
            model_dir = _normalise(model_dir, staging / "model")
        paths = _select_files(model_dir, variants)
        paths.update(_build(model_dir, staging / "built", variants))
        fidelity = _fidelity(
            model_dir, staging, variants, min_fidelity, allow_lossy=allow_lossy, show_progress=progress
        )
        _log(f"hashing {len(paths)} files ...")
        manifest = Manifest.build(
            name or default_name,
            revision or default_revision,
            paths,
            {n: f.to_manifest() for n, f in fidelity.items()},
        )
        if isinstance(target, Path):
            return _write_local(target, manifest, paths)
        client = client or make_client(max_pool_connections=_CONCURRENCY + 2)
        return _upload(client, target, manifest, paths, progress=progress)


# --- source --------------------------------------------------------------------------------------------
def local_source(source: str) -> Path | None:
    """SOURCE as a local model directory; None if it names a Hub model; ValueError, at once, if it is neither."""
    path = Path(source).expanduser()
    if path.is_dir():
        problem = directory_problem(path)
        if problem:  # before any tokenizer or model loading could fail on it less clearly
            raise ValueError(
                f"{source} {problem}; pass a directory holding config.json and the weights, or a Hugging Face "
                "model id such as deepset/roberta-base-squad2"
            )
        return path
    if path.exists() or source.count("/") > 1 or source.startswith((".", "/", "~")):
        raise ValueError(
            f"SOURCE {source!r} is neither a model directory (looked for {path.absolute()}) nor a Hugging Face "
            "model id; pass a directory holding config.json and the weights, or an id such as "
            "deepset/roberta-base-squad2"
        )
    return None


def _resolve_source(source: str, revision: str | None) -> tuple[Path, str, str]:
    """A local directory, or a Hub model id fetched into the HF cache (its commit hash is the revision)."""
    path = local_source(source)
    if path is not None:
        return path, path.resolve().name, "local"
    path = Path(source).expanduser()
    from huggingface_hub import snapshot_download  # only for Hub ids: needs internet

    _log(f"downloading {source} from the Hugging Face Hub ...")
    try:
        snapshot = Path(snapshot_download(source, revision=revision))
    except Exception as exc:  # the hub raises many types (offline, unknown repo, gated): one clear line
        why = " ".join(str(exc).split())[:300]
        raise ValueError(
            f"could not fetch {source!r} from the Hugging Face Hub ({type(exc).__name__}: {why}), and there is "
            f"no directory {path.absolute()}; without internet, pass a local model directory instead"
        ) from exc
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
        if path.suffix in _LEGACY_WEIGHTS:
            _log(f"  left out {path.name}: pickle or TF weights, which the function never loads")
        elif needed_by <= _BUILT:
            _log(f"  left out {path.name}: {', '.join(sorted(needed_by))} files are rebuilt from the model")
        elif not needed_by & set(variants):
            needs = ", ".join(sorted(needed_by))
            _log(f"  left out {path.name}: only {needs} reads it, and this publish is {', '.join(variants)}")
        else:
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
        _log(f"building {variant.name} (an ONNX export, about a minute for a roberta-base-size model) ...")
        started = time.perf_counter()
        path = builder(model_dir, out)
        _log(f"  built {path.name} in {time.perf_counter() - started:.1f} s")
        built[path.name] = path
    return built


def _fidelity(
    model_dir: Path,
    staging: Path,
    variants: Sequence[str],
    threshold: float,
    *,
    allow_lossy: bool,
    show_progress: bool = True,
) -> dict[str, gate.Fidelity]:
    """Lossy variants against their references, served from the model and everything built (the reference's
    export included, even when only the lossy variant is published)."""
    lossy = gate.lossy(variants)
    if not lossy:
        return {}
    references = [str(v.reference) for v in lossy]
    built = staging / "built"
    _build(model_dir, built, [r for r in references if not (built / registry.get(r).weight_file).exists()])
    served = staging / "served"
    served.mkdir()
    for path in [*built.iterdir(), *model_dir.iterdir()]:  # a fresh build over a stale export in the source
        if path.is_file() and not path.name.startswith(".") and not (served / path.name).exists():
            (served / path.name).symlink_to(path.resolve())
    _log(f"measuring {', '.join(v.name for v in lossy)} against {', '.join(sorted(set(references)))} ...")
    shown = reporter("fidelity probes", unit="answers", enabled=show_progress)
    results = gate.measure(served, [v.name for v in lossy], threshold=threshold, progress=shown)
    for f in results.values():
        verdict = "passed" if f.passed else "BELOW THE THRESHOLD"
        _log(
            f"  {f.variant}: the same answer as {f.reference} on {f.same}/{f.count} probes ({f.share:.1%}), {verdict}"
        )
    gate.enforce(results, allow_lossy=allow_lossy)
    return results


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


# --- local directory ------------------------------------------------------------------------------------
def _local_destination(path: Path) -> Path:
    """Checked before any work: a new or empty directory, or an earlier publish (it holds a manifest)."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MANIFEST_NAME).is_file():
        raise ValueError(f"{path} holds other files; publish into a new or empty directory")
    return path


def _write_local(target: Path, manifest: Manifest, paths: dict[str, Path]) -> PublishResult:
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
    _log(f"wrote {len(manifest.files)} files and {MANIFEST_NAME} to {target}")
    return PublishResult(manifest, tuple(e.key for e in manifest.files), (), True)


# --- CLI -----------------------------------------------------------------------------------------------
def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _share(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a share between 0 and 1, got {text}")
    return value


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m qa_tools.publish", description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="local model directory or Hugging Face model id (needs internet)")
    parser.add_argument(
        "destination",
        help="s3://bucket/prefix/, or a local directory (for MODEL_LOCAL_PATH or the baked image)",
    )
    parser.add_argument(
        "--variants",
        default=",".join(registry.PUBLISHED_BY_DEFAULT),
        help=f"comma-separated backend variants to publish, of {','.join(registry.NAMES)} "
        f"(default: {','.join(registry.PUBLISHED_BY_DEFAULT)})",
    )
    parser.add_argument(
        "--min-fidelity",
        type=_share,
        default=gate.DEFAULT_THRESHOLD,
        help="least share of probe questions a lossy variant (int8) must answer with its reference's span "
        f"(default: {gate.DEFAULT_THRESHOLD})",
    )
    parser.add_argument(
        "--allow-lossy",
        action="store_true",
        help="publish a lossy variant below --min-fidelity anyway (the manifest and /health say so)",
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
            args.source, args.destination, variants=variants, name=args.name, revision=args.revision,
            progress=not args.no_progress, min_fidelity=args.min_fidelity, allow_lossy=args.allow_lossy,
        )  # fmt: skip
    except (ValueError, ManifestError, OSError) as exc:
        _log(f"error: {exc}")
        return 2
    except (ClientError, BotoCoreError) as exc:
        _log(f"error: S3: {exc}")
        return 1
    where = args.destination if "://" not in args.destination else S3Location.parse(args.destination).uri()
    summary = {
        "destination": where,
        "model": result.manifest.name,
        "revision": result.manifest.revision,
        "variants": list(result.manifest.variants),
        "fidelity": dict(result.manifest.fidelity),
        "uploaded": list(result.uploaded),
        "skipped": list(result.skipped),
        "manifest": "uploaded" if result.manifest_uploaded else "unchanged",
    }
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
