"""Model store: warm a published model from S3, verified, once per sandbox: into MODEL_DIR (Lambda: /tmp) or
into memory (``handler.store.memory``), as MODEL_STORE says. This module orchestrates: ``manifest_fetch``
reads the manifest (and diagnoses why it cannot), ``choice`` picks the store, ``download`` / ``memory`` fetch,
``cache`` keeps the copy, ``report`` says what was done; ``baked`` serves a model in the image instead. It
takes plain arguments; ``handler.runtime.loader`` reads them from the settings.

Guarantees (docs/model-store.md): only the files the chosen backend variant needs are fetched; every byte is
checked against the manifest's size and sha256 (hashed while downloading); on disk, a model directory appears
only by an atomic rename of a fully verified staging directory, so a failed or killed warm-up leaves nothing a
later init could mistake for a model, and a verified copy already in the cache is reused without downloading;
in memory, nothing is written at all.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handler import variants
from handler.model_files import DirectoryFiles, MemoryFiles, ModelFiles
from handler.store import cache
from handler.store.choice import choose_store
from handler.store.errors import InvalidManifest
from handler.store.manifest import MANIFEST_NAME, FileEntry, Manifest
from handler.store.manifest_fetch import fetch_manifest, parse_manifest
from handler.store.report import WarmupReport
from handler.store.s3 import S3Location, make_client

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from botocore.client import BaseClient


@dataclass(frozen=True, kw_only=True)
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
    variant: str  # the one whose files these are: the requested one, or its fallback

    def report(self, model: ModelFiles, *, skipped: bool, **extra: Any) -> WarmupReport:
        result = WarmupReport(
            model=model,
            variant=self.variant,
            source=self.location.uri(),
            model_name=self.manifest.name,
            revision=self.manifest.revision,
            manifest_sha256=self.digest,
            files=len(self.files),
            bytes=0 if skipped else sum(f.size for f in self.files),
            seconds=time.perf_counter() - self.started,
            skipped=skipped,
            fidelity=self.manifest.fidelity.get(self.variant),
            golden=self.manifest.golden,
            **extra,
        )
        result.log()
        return result


def _published(
    location: S3Location | str,
    variant: str,
    client: BaseClient | None,
    transfer: TransferConfig | None,
    fallback: str | None = None,
) -> _Published:
    from handler.store.download import default_transfer_config

    started = time.perf_counter()
    variants.get(variant)
    location = S3Location.parse(location) if isinstance(location, str) else location
    transfer = transfer or default_transfer_config()
    client = client or make_client(max_pool_connections=transfer.max_request_concurrency + 2)
    raw = fetch_manifest(client, location)
    manifest = parse_manifest(raw, location)
    variant = manifest.serving(variant, fallback)
    files = manifest.files_for(variant)
    if not files or variant not in manifest.variants:
        raise InvalidManifest(
            f"{location.uri(MANIFEST_NAME)} has no {variant} weights (published: "
            f"{', '.join(manifest.variants) or 'none'}); republish with --variants {variant} "
            "or choose a published backend"
        )
    digest = hashlib.sha256(raw).hexdigest()
    return _Published(
        location=location,
        client=client,
        transfer=transfer,
        raw=raw,
        manifest=manifest,
        files=files,
        digest=digest,
        started=started,
        variant=variant,
    )


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
    return _to_disk(_published(location, variant, client, transfer), cache_root, rehash_cached)


def warm_into_memory(
    location: S3Location | str,
    variant: str,
    *,
    client: BaseClient | None = None,
    transfer: TransferConfig | None = None,
) -> WarmupReport:
    """The variant's files in memory, verified (``report.model`` is ``MemoryFiles``); nothing on disk."""
    return _to_memory(_published(location, variant, client, transfer))


def _to_disk(published: _Published, cache_root: Path, rehash: bool, reason: str = "") -> WarmupReport:
    from handler.store.download import download

    p = published
    target = cache.entry_dir(cache_root, p.digest, p.variant)
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
    return p.report(DirectoryFiles(target), skipped=skipped, store="disk", reason=reason)


def _to_memory(published: _Published, reason: str = "") -> WarmupReport:
    from handler.store.memory import download_to_memory

    p = published
    data = download_to_memory(p.client, p.transfer, p.location, p.files)
    model = MemoryFiles(data, f"{p.manifest.name} ({p.variant}, in memory)")
    return p.report(model, skipped=False, store="memory", reason=reason)


def warm_from_s3(
    location: S3Location | str,
    cache_root: Path,
    variant: str,
    *,
    mode: str = "auto",
    snapstart: bool = False,
    client: BaseClient | None = None,
    transfer: TransferConfig | None = None,
    fallback: str | None = None,
) -> WarmupReport:
    """The init path for a model in S3: on disk under ``cache_root`` or in memory, as ``choose_store`` says
    for MODEL_STORE=``mode``. ``fallback``: the variant to serve if the manifest has no ``variant``."""
    published = _published(location, variant, client, transfer, fallback)
    target = cache.entry_dir(cache_root, published.digest, published.variant)
    store, reason = choose_store(
        mode,
        snapstart=snapstart,
        cache_root=cache_root,
        target=target,
        digest=published.digest,
        files=published.files,
    )
    if store == "memory":
        return _to_memory(published, reason)
    return _to_disk(published, cache_root, False, reason)
