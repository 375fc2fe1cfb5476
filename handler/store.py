"""Model store: warm a published model from S3 into local storage (Lambda: /tmp), verified, once per sandbox.

Guarantees (docs/model-store.md): only the files the chosen backend variant needs are fetched; every byte is
checked against the manifest's size and sha256 (hashed while downloading); a model directory appears only by
an atomic rename of a fully verified staging directory, so a failed or killed warm-up leaves nothing a later
init could mistake for a model; a verified copy already in the cache is reused without downloading.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger
from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.subscribers import BaseSubscriber

from handler.errors import ModelStoreError
from handler.manifest import (
    MANIFEST_NAME,
    MARKER_NAME,
    FileEntry,
    Manifest,
    ManifestError,
    UnsafeKeyError,
    sha256_file,
)
from handler.s3 import S3Location, make_client
from handler.settings import BACKEND_VARIANTS, Settings

logger = Logger(child=True)

MIB = 1 << 20
# Ranged GETs of 16 MiB, 8 in flight: the fastest of the settings measured (docs/model-store.md).
CHUNK_BYTES = 16 * MIB
CONCURRENCY = 8
_STAGING_PREFIX = ".staging-"
_LOCK_NAME = ".lock"
# Room for the marker, the manifest copy and filesystem overhead beyond the files themselves.
_SPACE_MARGIN = 16 * MIB
_LAMBDA_MAX_EPHEMERAL_MB = 10240
_HASH_CHUNK = MIB


# --- errors: each message says what is wrong and what the operator should do -----------------------------
class InvalidS3Uri(ModelStoreError):
    """MODEL_S3_URI is not ``s3://bucket/prefix/``."""


class BucketNotFound(ModelStoreError):
    """The bucket does not exist (or is in another partition)."""


class AccessDenied(ModelStoreError):
    """Credentials are missing or the execution role may not read the model."""


class PrefixEmpty(ModelStoreError):
    """Nothing is published under the prefix."""


class ManifestMissing(ModelStoreError):
    """Objects exist under the prefix but no manifest.json: a publish is incomplete or was not ours."""


class InvalidManifest(ModelStoreError):
    """manifest.json is not a valid format-1 manifest, or it has no files for the chosen variant."""


class UnsafeKey(InvalidManifest):
    """A manifest key would write outside the model directory."""


class ObjectMissing(ModelStoreError):
    """The manifest lists a file that is not in the bucket."""


class HashMismatch(ModelStoreError):
    """A downloaded file's size or sha256 differs from the manifest."""


class InsufficientStorage(ModelStoreError):
    """The cache filesystem (/tmp) has too little free space for the model."""


class DownloadFailed(ModelStoreError):
    """The network or S3 failed after retries, or the cache directory is not writable."""


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
            "model_dir": str(self.model_dir),
            "variant": self.variant,
            "source": self.source,
            "model_name": self.model_name,
            "revision": self.revision,
            "manifest_sha256": self.manifest_sha256,
            "files": self.files,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 1),
            "skipped": self.skipped,
        }


def default_transfer_config() -> TransferConfig:
    """s3transfer's classic manager: parallel ranged GETs straight to disk."""
    return TransferConfig(
        multipart_threshold=CHUNK_BYTES,
        multipart_chunksize=CHUNK_BYTES,
        max_concurrency=CONCURRENCY,
        num_download_attempts=5,
        preferred_transfer_client="classic",
    )


def warm_model(
    s3_uri: str,
    cache_root: Path,
    variant: str,
    *,
    client: BaseClient | None = None,
    transfer: TransferConfig | None = None,
    rehash_cached: bool = False,
) -> WarmupReport:
    """Make the model published at ``s3_uri`` available under ``cache_root`` for ``variant``.

    Returns the report (``report.model_dir`` is what ``QAEngine.load`` takes). Raises a subclass of
    ModelStoreError. A cached copy is trusted if its verified marker matches the manifest and every file's
    size and mtime are unchanged since hashing; ``rehash_cached`` re-hashes it instead.
    """
    started = time.perf_counter()
    if variant not in BACKEND_VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {BACKEND_VARIANTS}")
    try:
        location = S3Location.parse(s3_uri)
    except ValueError as exc:
        raise InvalidS3Uri(f"MODEL_S3_URI: {exc}") from None
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
    target = cache_root / f"{digest[:16]}-{variant}"

    with _locked(cache_root):
        skipped = _is_verified(target, digest, files, rehash=rehash_cached)
        if not skipped:
            _clean(cache_root)
            _check_space(cache_root, files)
            staging = Path(tempfile.mkdtemp(prefix=_STAGING_PREFIX, dir=cache_root))
            try:
                hashes = _download(client, transfer, location, files, staging)
                _write_marker(staging, raw, digest, files, hashes)
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
    if settings.model_local_path is None:
        return warm_model(settings.model_s3_uri, settings.model_dir, settings.backend)
    path = settings.model_local_path
    if not (path / "config.json").is_file():
        raise ModelStoreError(f"MODEL_LOCAL_PATH={path} is not a model directory (no config.json)")
    name, revision, count = path.name, "", 0
    if (path / MANIFEST_NAME).is_file():  # a published copy: check the variant's files are all there
        manifest = _parse_manifest((path / MANIFEST_NAME).read_bytes(), None)
        missing = [f.key for f in manifest.files_for(settings.backend) if not _has_size(path / f.key, f.size)]
        if missing:
            raise ModelStoreError(
                f"MODEL_LOCAL_PATH={path}: missing or truncated for {settings.backend}: {missing}"
            )
        name, revision, count = manifest.name, manifest.revision, len(manifest.files_for(settings.backend))
    result = WarmupReport(path, settings.backend, str(path), name, revision, "", count, 0, 0.0, True)
    logger.info("model warm-up", extra=result.as_log())
    return result


# --- manifest ------------------------------------------------------------------------------------------
def _fetch_manifest(client: BaseClient, location: S3Location) -> bytes:
    uri = location.uri(MANIFEST_NAME)
    try:
        return client.get_object(Bucket=location.bucket, Key=location.key(MANIFEST_NAME))["Body"].read()
    except ClientError as exc:
        if _code(exc) not in ("NoSuchKey", "404"):
            raise _client_error(exc, uri) from exc
    except (BotoCoreError, OSError) as exc:
        raise _transport_error(exc, uri, client) from exc
    # No manifest: tell "nothing published" from "publish incomplete or not ours".
    try:
        listing = client.list_objects_v2(Bucket=location.bucket, Prefix=location.prefix, MaxKeys=1)
    except ClientError as exc:
        raise _client_error(exc, uri) from exc
    except (BotoCoreError, OSError) as exc:
        raise _transport_error(exc, uri, client) from exc
    if not listing.get("KeyCount", 0):
        raise PrefixEmpty(
            f"nothing is published under {location.uri()}; check MODEL_S3_URI or publish the model with "
            f"`python -m handler.publish MODEL {location.uri()}`"
        )
    raise ManifestMissing(
        f"{uri} is missing although {location.uri()} holds objects: a publish was interrupted or the files "
        f"were not uploaded with handler.publish; re-run `python -m handler.publish MODEL {location.uri()}`"
    )


def _parse_manifest(raw: bytes, location: S3Location | None) -> Manifest:
    where = location.uri(MANIFEST_NAME) if location else MANIFEST_NAME
    try:
        return Manifest.from_json(raw)
    except UnsafeKeyError as exc:
        raise UnsafeKey(f"{where} refused: {exc}; the manifest must list plain relative keys") from None
    except ManifestError as exc:
        raise InvalidManifest(
            f"{where} is invalid: {exc}; re-publish with `python -m handler.publish`"
        ) from None


# --- cache ---------------------------------------------------------------------------------------------
@contextmanager
def _locked(cache_root: Path) -> Iterator[None]:
    """Serialise warm-ups sharing a cache root (one per Lambda sandbox; several in local development)."""
    try:
        cache_root.mkdir(parents=True, exist_ok=True)
        lock = (cache_root / _LOCK_NAME).open("a")
    except OSError as exc:
        raise DownloadFailed(
            f"MODEL_DIR={cache_root} is not writable ({exc}); on Lambda use a path under /tmp"
        ) from exc
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _has_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _is_verified(target: Path, digest: str, files: tuple[FileEntry, ...], *, rehash: bool) -> bool:
    """True if ``target`` holds exactly the manifest's files, unchanged since they were hashed."""
    try:
        marker = json.loads((target / MARKER_NAME).read_bytes())
        if marker.get("manifest_sha256") != digest:
            return False
        for entry in files:
            path, recorded = target / entry.key, marker["files"][entry.key]
            stat = path.stat()
            if stat.st_size != entry.size or stat.st_mtime_ns != recorded["mtime_ns"]:
                return False
            if rehash and sha256_file(path) != entry.sha256:
                return False
        return True
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _clean(cache_root: Path) -> None:
    """Drop staging leftovers of killed warm-ups and copies of other manifests: one model per cache."""
    ours = re.compile(rf"[0-9a-f]{{16}}-({'|'.join(map(re.escape, BACKEND_VARIANTS))})")
    for entry in cache_root.iterdir():
        if entry.is_dir() and (entry.name.startswith(_STAGING_PREFIX) or ours.fullmatch(entry.name)):
            shutil.rmtree(entry, ignore_errors=True)


def _check_space(cache_root: Path, files: tuple[FileEntry, ...]) -> None:
    needed = sum(f.size for f in files) + _SPACE_MARGIN
    usage = shutil.disk_usage(cache_root)
    if usage.free >= needed:
        return
    # Lambda's /tmp is a filesystem of EphemeralStorage size: what is used now, plus the model, plus 10%.
    suggested = max(512, math.ceil((usage.used + needed * 1.1) / MIB / 512) * 512)
    raise InsufficientStorage(
        f"the model needs {needed / MIB:,.0f} MiB in MODEL_DIR={cache_root} but only {usage.free / MIB:,.0f} "
        f"MiB are free; set the function's EphemeralStorage Size to at least {suggested} MB "
        f"(max {_LAMBDA_MAX_EPHEMERAL_MB})"
    )


def _write_marker(
    staging: Path, raw: bytes, digest: str, files: tuple[FileEntry, ...], hashes: dict[str, str]
) -> None:
    (staging / MANIFEST_NAME).write_bytes(raw)
    recorded = {
        f.key: {"size": f.size, "sha256": hashes[f.key], "mtime_ns": (staging / f.key).stat().st_mtime_ns}
        for f in files
    }
    marker = {"manifest_sha256": digest, "files": recorded}
    (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")


# --- download ------------------------------------------------------------------------------------------
class _HashingFile:
    """A seekable file for s3transfer that hashes the bytes in file order while the download runs.

    Ranges arrive out of order: bytes at the hashed frontier are hashed at once, later ones when the frontier
    reaches them (read back from the page cache). A write behind the frontier (s3transfer retrying a broken
    stream) makes ``hexdigest`` re-hash the whole file, so the result never depends on retry patterns.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = path.open("x+b")
        self._fd = self._file.fileno()
        self._lock = threading.Lock()
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in _sha
        self._ahead: dict[int, int] = {}  # start -> end of written ranges beyond the frontier
        self._position = 0
        self._rewritten = False

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence != os.SEEK_SET:
            raise OSError("only absolute seeks are supported")
        self._position = offset
        return offset

    def tell(self) -> int:
        return self._position

    def write(self, data: bytes) -> int:
        with self._lock:
            start, end = self._position, self._position + len(data)
            _pwrite_all(self._fd, data, start)
            self._position = end
            if start < self._hashed:
                self._rewritten = True
            elif start == self._hashed:
                self._sha.update(data)
                self._hashed = end
                self._catch_up()
            else:
                self._ahead[start] = max(end, self._ahead.get(start, end))
        return len(data)

    def _catch_up(self) -> None:
        while (end := self._ahead.pop(self._hashed, None)) is not None:
            while self._hashed < end:
                chunk = os.pread(self._fd, min(_HASH_CHUNK, end - self._hashed), self._hashed)
                self._sha.update(chunk)
                self._hashed += len(chunk)

    def close(self) -> None:
        self._file.close()

    def size(self) -> int:
        return os.fstat(self._fd).st_size if not self._file.closed else self.path.stat().st_size

    def hexdigest(self) -> str:
        """The file's sha256: the streamed hash if it covered the whole file exactly once, else re-hashed."""
        if self._rewritten or self._ahead or self._hashed != self.size():
            return sha256_file(self.path)
        return self._sha.hexdigest()


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """``os.pwrite`` until every byte is down: on a filling disk a write can be short without an error, and
    the bytes it dropped would surface later as a misleading hash mismatch instead of ENOSPC."""
    view = memoryview(data)
    while view:
        written = os.pwrite(fd, view, offset)
        if not written:
            raise OSError(errno.EIO, "pwrite made no progress")
        view, offset = view[written:], offset + written


class _KnownSize(BaseSubscriber):
    """Gives s3transfer the size from the manifest, sparing a HEAD request per file."""

    def __init__(self, size: int) -> None:
        self._size = size

    def on_queued(self, future: Any, **kwargs: Any) -> None:
        provide = getattr(future.meta, "provide_transfer_size", None)  # the CRT manager sizes objects itself
        if provide is not None:
            provide(self._size)


def _target_path(staging: Path, key: str) -> Path:
    """Defence in depth beyond the manifest's key check: the path must stay inside ``staging``."""
    path = (staging / key).resolve()
    if not path.is_relative_to(staging.resolve()):
        raise UnsafeKey(f"refused key {key!r}: it resolves outside the model directory")
    return path


def _download(
    client: BaseClient,
    transfer: TransferConfig,
    location: S3Location,
    files: tuple[FileEntry, ...],
    staging: Path,
) -> dict[str, str]:
    """Download all ``files`` concurrently (large ones as parallel ranged GETs), verify, return sha256s."""
    sinks: dict[str, _HashingFile] = {}
    with ExitStack() as stack:
        for entry in files:
            path = _target_path(staging, entry.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            sinks[entry.key] = sink = _HashingFile(path)
            stack.callback(sink.close)
        current = ""
        try:
            with create_transfer_manager(client, transfer) as manager:
                futures = [
                    (entry.key, manager.download(
                        location.bucket, location.key(entry.key), sinks[entry.key],
                        subscribers=[_KnownSize(entry.size)],
                    ))
                    for entry in files
                ]  # fmt: skip
                for key, future in futures:
                    current = key
                    future.result()
        except ClientError as exc:
            if _code(exc) == "InvalidRange":
                raise HashMismatch(
                    f"{location.uri(current)} is smaller than the manifest says: the object changed after "
                    "publishing; re-run `python -m handler.publish`"
                ) from exc
            raise _client_error(exc, location.uri(current)) from exc
        except (BotoCoreError, RetriesExceededError, OSError) as exc:
            raise _transport_error(exc, location.uri(current), client) from exc
    hashes = {}
    for entry in files:
        sink = sinks[entry.key]
        size, hashes[entry.key] = sink.size(), sink.hexdigest()
        if size != entry.size or hashes[entry.key] != entry.sha256:
            raise HashMismatch(
                f"{location.uri(entry.key)}: got {size} bytes with sha256 {hashes[entry.key][:12]}…, "
                f"manifest says {entry.size} bytes with sha256 {entry.sha256[:12]}…; the object changed "
                "after publishing (a publish in progress?); re-run `python -m handler.publish`"
            )
    return hashes


# --- error mapping -------------------------------------------------------------------------------------
def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _client_error(exc: ClientError, uri: str) -> ModelStoreError:
    code = _code(exc)
    bucket = uri.removeprefix("s3://").split("/", 1)[0]
    if code == "NoSuchBucket":
        return BucketNotFound(f"bucket {bucket!r} does not exist (reading {uri}); check MODEL_S3_URI")
    if code in ("AccessDenied", "403", "AllAccessDisabled", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                "ExpiredToken", "InvalidToken"):  # fmt: skip
        return AccessDenied(
            f"access denied reading {uri} ({code}); grant the execution role s3:GetObject on "
            f"arn:aws:s3:::{bucket}/<prefix>* and s3:ListBucket on arn:aws:s3:::{bucket}"
        )
    if code in ("NoSuchKey", "404"):
        return ObjectMissing(
            f"{uri} is listed in the manifest but missing; re-run `python -m handler.publish`"
        )
    return DownloadFailed(f"S3 error {code or 'unknown'} reading {uri}: {exc}")


def _transport_error(exc: BaseException, uri: str, client: BaseClient) -> ModelStoreError:
    if isinstance(exc, NoCredentialsError):
        return AccessDenied(f"no AWS credentials to read {uri}; on Lambda the execution role provides them")
    if isinstance(exc, OSError) and not isinstance(exc, ConnectionError):
        return DownloadFailed(f"cannot write the model to local storage while reading {uri}: {exc}")
    if isinstance(exc, RetriesExceededError) and exc.last_exception is not None:
        exc = exc.last_exception  # "Max Retries Exceeded" alone hides what kept breaking the download
    return DownloadFailed(
        f"reading {uri} from {client.meta.endpoint_url} failed after retries: {exc}; check network access "
        "to S3 (VPC endpoint or NAT) and AWS_ENDPOINT_URL_S3"
    )
