"""Model store: warm a published model from S3 into local storage (Lambda: /tmp), verified, once per sandbox.

Guarantees (docs/model-store.md): only the files the chosen backend variant needs are fetched; every byte is
checked against the manifest's size and sha256 (hashed while downloading); a model directory appears only by
an atomic rename of a fully verified staging directory, so a failed or killed warm-up leaves nothing a later
init could mistake for a model; a verified copy already in the cache is reused without downloading.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger

from handler import variants
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
from handler.store.manifest import MANIFEST_NAME, Manifest, ManifestError, UnsafeKeyError
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


@dataclass(frozen=True)
class WarmupReport:
    """What the warm-up did: log it, put it in metrics, and load the engine from ``model_dir``."""

    model_dir: Path
    variant: str
    source: str
    model_name: str
    revision: str
    manifest_sha256: str
    files: int
    bytes: int  # downloaded; 0 when skipped
    seconds: float
    skipped: bool  # a verified copy was already there (or the model is baked into the image)

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.bytes and self.seconds > 0 else 0.0

    def as_log(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "model_dir": str(self.model_dir),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 1),
        }


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

    Returns the report (``report.model_dir`` is what ``QAEngine.load`` takes). Raises a subclass of
    ModelStoreError. A cached copy is trusted if its verified marker matches the manifest and every file's
    size and mtime are unchanged since hashing; ``rehash_cached`` re-hashes it instead.
    """
    from handler.store.download import default_transfer_config, download  # boto3's transfer stack: S3 only

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
    target = cache.entry_dir(cache_root, digest, variant)

    with cache.locked(cache_root):
        skipped = cache.is_verified(target, digest, files, rehash=rehash_cached)
        if not skipped:
            cache.clean(cache_root)
            cache.check_space(cache_root, files)
            staging = Path(tempfile.mkdtemp(prefix=cache.STAGING_PREFIX, dir=cache_root))
            try:
                hashes = download(client, transfer, location, files, staging)
                cache.write_marker(staging, raw, digest, files, hashes)
                staging.rename(target)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    result = WarmupReport(
        model_dir=target,
        variant=variant,
        source=location.uri(),
        model_name=manifest.name,
        revision=manifest.revision,
        manifest_sha256=digest,
        files=len(files),
        bytes=0 if skipped else sum(f.size for f in files),
        seconds=time.perf_counter() - started,
        skipped=skipped,
    )
    logger.info("model warm-up", extra=result.as_log())
    return result


def warm_from_settings(settings: Settings) -> WarmupReport:
    """The init path: a model baked into the image (MODEL_LOCAL_PATH) wins over S3 (MODEL_S3_URI)."""
    variant, path = settings.variant.name, settings.model_source
    if isinstance(path, S3Location):
        return warm_model(path, settings.model_dir, variant)
    name, revision, count = path.name, "", 0
    if (path / MANIFEST_NAME).is_file():  # a published copy: check the variant's files are all there
        manifest = _parse_manifest((path / MANIFEST_NAME).read_bytes(), None)
        needed = manifest.files_for(variant)
        missing = [f.key for f in needed if not cache.has_size(path / f.key, f.size)]
        if missing:
            raise ModelStoreError(f"MODEL_LOCAL_PATH={path}: missing or truncated for {variant}: {missing}")
        name, revision, count = manifest.name, manifest.revision, len(needed)
    result = WarmupReport(path, variant, str(path), name, revision, "", count, 0, 0.0, True)
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
