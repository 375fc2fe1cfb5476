"""Verified download: every file of a variant fetched concurrently (big ones as parallel ranged GETs), each
byte hashed while it arrives, sizes and sha256 checked against the manifest before anything is trusted.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from boto3.s3.transfer import TransferConfig, create_transfer_manager
from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError
from s3transfer.exceptions import RetriesExceededError
from s3transfer.subscribers import BaseSubscriber

from handler.store.errors import PUBLISH_COMMAND, HashMismatch, UnsafeKey
from handler.store.manifest import FileEntry, sha256_file
from handler.store.s3 import S3Location, client_error, error_code, transport_error

MIB = 1 << 20
# Ranged GETs of 16 MiB, 8 in flight: the fastest of the settings measured (docs/model-store.md).
CHUNK_BYTES = 16 * MIB
CONCURRENCY = 8
_HASH_CHUNK = MIB


def default_transfer_config() -> TransferConfig:
    """s3transfer's classic manager: parallel ranged GETs straight to disk."""
    return TransferConfig(
        multipart_threshold=CHUNK_BYTES,
        multipart_chunksize=CHUNK_BYTES,
        max_concurrency=CONCURRENCY,
        num_download_attempts=5,
        preferred_transfer_client="classic",
    )


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


def download(
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
            if error_code(exc) == "InvalidRange":
                raise HashMismatch(
                    f"{location.uri(current)} is smaller than the manifest says: the object changed after "
                    f"publishing; re-run `{PUBLISH_COMMAND}`"
                ) from exc
            raise client_error(exc, location.uri(current)) from exc
        except (BotoCoreError, RetriesExceededError, OSError) as exc:
            raise transport_error(exc, location.uri(current), client) from exc
    hashes = {}
    for entry in files:
        sink = sinks[entry.key]
        size, hashes[entry.key] = sink.size(), sink.hexdigest()
        if size != entry.size or hashes[entry.key] != entry.sha256:
            raise HashMismatch(
                f"{location.uri(entry.key)}: got {size} bytes with sha256 {hashes[entry.key][:12]}…, "
                f"manifest says {entry.size} bytes with sha256 {entry.sha256[:12]}…; the object changed "
                f"after publishing (a publish in progress?); re-run `{PUBLISH_COMMAND}`"
            )
    return hashes
