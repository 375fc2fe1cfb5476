"""Model store: warm a published model from S3, verified, once per sandbox: into MODEL_DIR (Lambda: /tmp) or
into memory (``handler.store.memory``), as MODEL_STORE says (``choose_store`` resolves ``auto``).

Guarantees (docs/model-store.md): only the files the chosen backend variant needs are fetched; every byte is
checked against the manifest's size and sha256 (hashed while downloading); on disk, a model directory appears
only by an atomic rename of a fully verified staging directory, so a failed or killed warm-up leaves nothing a
later init could mistake for a model, and a verified copy already in the cache is reused without downloading;
in memory, nothing is written at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from handler import variants
from handler.model_files import DirectoryFiles, MemoryFiles, ModelFiles
from handler.settings import Settings
from handler.store import cache
from handler.store.errors import (
    PUBLISH_COMMAND,
    AccessDenied,
    InvalidManifest,
    ManifestMissing,
    ModelStoreError,
    PrefixEmpty,
    UnsafeKey,
)
from handler.store.golden import Golden
from handler.store.manifest import MANIFEST_NAME, FileEntry, Manifest, ManifestError, UnsafeKeyError
from handler.store.s3 import (
    S3Location,
    client_error,
    error_code,
    is_denied,
    is_missing,
    make_client,
    transport_error,
)

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from botocore.client import BaseClient

logger = Logger(child=True)

MIB = 1 << 20
_UNLOGGED = ("model", "golden")  # the files themselves, and ~200 questions with their contexts


@dataclass(frozen=True)
class WarmupReport:
    """What the warm-up did: log it, put it in metrics, and load the engine from ``model``."""

    model: ModelFiles  # a verified directory, or verified bytes in memory (released after loading)
    variant: str
    source: str
    model_name: str
    revision: str
    manifest_sha256: str
    files: int
    bytes: int  # downloaded; 0 when skipped
    seconds: float
    skipped: bool  # a verified copy was already there (or the model is baked into the image)
    store: str = "disk"  # disk | memory | image
    reason: str = ""  # why this store, when MODEL_STORE=auto chose it
    fidelity: Mapping[str, Any] | None = None  # the manifest's figures for a lossy variant, if it has them
    golden: Golden | None = None  # the manifest's golden answers (the self-check's questions), if it has them

    @property
    def model_dir(self) -> Path | None:
        """The model directory on disk; None in memory mode."""
        return self.model.root if isinstance(self.model, DirectoryFiles) else None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.bytes and self.seconds > 0 else 0.0

    def as_log(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _UNLOGGED}
        return {
            **fields,
            "model_dir": str(self.model_dir or ""),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 1),
        }


@dataclass(frozen=True)
class _Published:
    """A variant's files as the manifest under ``location`` lists them, and the client to fetch them with."""

    location: S3Location
    client: BaseClient
    transfer: TransferConfig
    raw: bytes
    manifest: Manifest
    files: tuple[FileEntry, ...]
    digest: str
    started: float

    def report(self, model: ModelFiles, variant: str, *, skipped: bool, **extra: Any) -> WarmupReport:
        result = WarmupReport(
            model=model,
            variant=variant,
            source=self.location.uri(),
            model_name=self.manifest.name,
            revision=self.manifest.revision,
            manifest_sha256=self.digest,
            files=len(self.files),
            bytes=0 if skipped else sum(f.size for f in self.files),
            seconds=time.perf_counter() - self.started,
            skipped=skipped,
            fidelity=self.manifest.fidelity.get(variant),
            golden=self.manifest.golden,
            **extra,
        )
        logger.info("model warm-up", extra=result.as_log())
        return result


def _published(
    location: S3Location | str,
    variant: str,
    client: BaseClient | None,
    transfer: TransferConfig | None,
) -> _Published:
    from handler.store.download import default_transfer_config

    started = time.perf_counter()
    variants.get(variant)
    location = S3Location.parse(location) if isinstance(location, str) else location
    transfer = transfer or default_transfer_config()
    client = client or make_client(max_pool_connections=transfer.max_request_concurrency + 2)
    raw = _fetch_manifest(client, location)
    manifest = _parse_manifest(raw, location)
    files = manifest.files_for(variant)
    if not files or variant not in manifest.variants:
        raise InvalidManifest(
            f"{location.uri(MANIFEST_NAME)} has no {variant} weights (published: "
            f"{', '.join(manifest.variants) or 'none'}); republish with --variants {variant} "
            "or choose a published backend"
        )
    digest = hashlib.sha256(raw).hexdigest()
    return _Published(location, client, transfer, raw, manifest, files, digest, started)


def warm_model(
    location: S3Location | str,
    cache_root: Path,
    variant: str,
    *,
    client: BaseClient | None = None,
    transfer: TransferConfig | None = None,
    rehash_cached: bool = False,
) -> WarmupReport:
    """Make the model published at ``location`` available under ``cache_root`` for ``variant``.

    Returns the report (``report.model`` is what ``QAEngine.load`` takes). Raises a subclass of
    ModelStoreError. A cached copy is trusted if its verified marker matches the manifest and every file's
    size and mtime are unchanged since hashing; ``rehash_cached`` re-hashes it instead.
    """
    return _to_disk(_published(location, variant, client, transfer), cache_root, variant, rehash_cached)


def warm_into_memory(
    location: S3Location | str,
    variant: str,
    *,
    client: BaseClient | None = None,
    transfer: TransferConfig | None = None,
) -> WarmupReport:
    """The variant's files in memory, verified (``report.model`` is ``MemoryFiles``); nothing on disk."""
    return _to_memory(_published(location, variant, client, transfer), variant)


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


def _to_disk(
    published: _Published, cache_root: Path, variant: str, rehash: bool, reason: str = ""
) -> WarmupReport:
    from handler.store.download import download

    p = published
    target = cache.entry_dir(cache_root, p.digest, variant)
    with cache.locked(cache_root):
        skipped = cache.is_verified(target, p.digest, p.files, rehash=rehash)
        if not skipped:
            cache.clean(cache_root)
            cache.check_space(cache_root, p.files)
            staging = Path(tempfile.mkdtemp(prefix=cache.STAGING_PREFIX, dir=cache_root))
            try:
                hashes = download(p.client, p.transfer, p.location, p.files, staging)
                cache.write_marker(staging, p.raw, p.digest, p.files, hashes)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    return p.report(DirectoryFiles(target), variant, skipped=skipped, store="disk", reason=reason)


def _to_memory(published: _Published, variant: str, reason: str = "") -> WarmupReport:
    from handler.store.memory import download_to_memory

    p = published
    data = download_to_memory(p.client, p.transfer, p.location, p.files)
    model = MemoryFiles(data, f"{p.manifest.name} ({variant}, in memory)")
    return p.report(model, variant, skipped=False, store="memory", reason=reason)


def warm_from_settings(settings: Settings) -> WarmupReport:
    """The init path: a model baked into the image (MODEL_LOCAL_PATH) wins over S3 (MODEL_S3_URI)."""
    variant, path = settings.variant.name, settings.model_source
    if isinstance(path, S3Location):
        published = _published(path, variant, None, None)
        target = cache.entry_dir(settings.model_dir, published.digest, variant)
        store, reason = choose_store(
            settings.model_store,
            snapstart=settings.snapstart,
            cache_root=settings.model_dir,
            target=target,
            digest=published.digest,
            files=published.files,
        )
        if store == "memory":
            return _to_memory(published, variant, reason)
        return _to_disk(published, settings.model_dir, variant, False, reason)
    name, revision, count, fidelity, golden = path.name, "", 0, None, None
    if (path / MANIFEST_NAME).is_file():  # a published copy: check the variant's files are all there
        manifest = _parse_manifest((path / MANIFEST_NAME).read_bytes(), None)
        needed = manifest.files_for(variant)
        missing = [f.key for f in needed if not cache.has_size(path / f.key, f.size)]
        if missing:
            raise ModelStoreError(f"MODEL_LOCAL_PATH={path}: missing or truncated for {variant}: {missing}")
        name, revision, count = manifest.name, manifest.revision, len(needed)
        fidelity, golden = manifest.fidelity.get(variant), manifest.golden
    result = WarmupReport(
        DirectoryFiles(path), variant, str(path), name, revision, "", count, 0, 0.0, True, "image",
        fidelity=fidelity, golden=golden,
    )  # fmt: skip
    logger.info("model warm-up", extra=result.as_log())
    return result


def _fetch_manifest(client: BaseClient, location: S3Location) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    uri, manifest_key = location.uri(MANIFEST_NAME), location.key(MANIFEST_NAME)
    try:
        return client.get_object(Bucket=location.bucket, Key=manifest_key)["Body"].read()
    except ClientError as exc:
        if not (is_missing(exc) or is_denied(exc)):
            raise client_error(exc, uri) from exc
        failure = exc
    except (BotoCoreError, OSError) as exc:
        raise transport_error(exc, uri, client) from exc
    # S3 answers 403, not 404, for a missing key when the caller may not list the whole bucket. The execution
    # role may list under the prefix, so a listing tells a missing manifest from a refused read.
    if is_denied(failure) and _first_key(client, location, manifest_key, uri) == manifest_key:
        raise AccessDenied(
            f"access denied reading {uri} ({error_code(failure)}) although it exists: grant the execution "
            f"role s3:GetObject on arn:aws:s3:::{location.bucket}/{location.prefix}*, and kms:Decrypt on "
            "the bucket's KMS key if it uses one"
        ) from failure
    if _first_key(client, location, location.prefix, uri) is None:
        raise PrefixEmpty(
            f"nothing is published under {location.uri()}; check MODEL_S3_URI or publish the model with "
            f"`{PUBLISH_COMMAND} MODEL {location.uri()}`"
        )
    raise ManifestMissing(
        f"{uri} is missing although {location.uri()} holds objects: a publish was interrupted or the files "
        f"were not uploaded by the publish tooling; re-run `{PUBLISH_COMMAND} MODEL {location.uri()}`"
    )


def _first_key(client: BaseClient, location: S3Location, key_prefix: str, uri: str) -> str | None:
    """The first key starting with ``key_prefix`` (a prefix-scoped ListObjectsV2), None if there is none."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        listing = client.list_objects_v2(Bucket=location.bucket, Prefix=key_prefix, MaxKeys=1)
    except ClientError as exc:
        raise client_error(exc, uri) from exc
    except (BotoCoreError, OSError) as exc:
        raise transport_error(exc, uri, client) from exc
    contents = listing.get("Contents") or [{}]
    return contents[0].get("Key")


def _parse_manifest(raw: bytes, location: S3Location | None) -> Manifest:
    where = location.uri(MANIFEST_NAME) if location else MANIFEST_NAME
    try:
        return Manifest.from_json(raw)
    except UnsafeKeyError as exc:
        raise UnsafeKey(f"{where} refused: {exc}; the manifest must list plain relative keys") from None
    except ManifestError as exc:
        raise InvalidManifest(f"{where} is invalid: {exc}; re-publish with `{PUBLISH_COMMAND}`") from None
