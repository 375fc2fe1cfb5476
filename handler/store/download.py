"""Verified download: every file of a variant fetched concurrently (big ones as parallel ranged GETs), each
byte hashed while it arrives, sizes and sha256 checked against the manifest before anything is trusted.

``fetch`` does it into any ``RangeSink``: a staging file here (``download``), memory in ``handler.store.memory``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

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
# Ranges ahead of the hashed frontier wait in memory up to this much (about the ranges in flight) instead
# of being read back from the staging file.
HOLD_BYTES = CHUNK_BYTES * CONCURRENCY
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


class StreamHash:
    """sha256 of a file that arrives as ranges in any order, computed while they arrive: no second pass.

    Bytes at the hashed frontier are hashed at once; a range ahead of it waits until the frontier reaches it,
    held in memory up to ``hold`` bytes (None: no limit, for a sink that keeps every byte anyway) and beyond
    that re-read through ``read_back`` (the disk sink's page cache). A write behind the frontier or over a
    waiting range (s3transfer retrying a broken stream) makes ``result`` None: the caller re-hashes what it
    finally holds, so the digest never depends on retry patterns.
    """

    def __init__(self, *, hold: int | None, read_back: Callable[[int, int], bytes] | None = None) -> None:
        self._sha = hashlib.sha256()
        self._hashed = 0  # bytes [0, _hashed) are in _sha
        self._held: dict[int, bytes] = {}  # start -> bytes waiting beyond the frontier
        self._held_bytes = 0
        self._spilled: dict[int, int] = {}  # start -> end of waiting ranges to re-read
        self._hold = hold
        self._read_back = read_back
        self._broken = False

    def update(self, start: int, data: bytes) -> None:
        if start < self._hashed or start in self._held or start in self._spilled:
            self._broken = True
        elif start == self._hashed:
            self._sha.update(data)
            self._hashed += len(data)
            self._catch_up()
        elif self._hold is None or self._held_bytes + len(data) <= self._hold or self._read_back is None:
            self._held[start] = data
            self._held_bytes += len(data)
        else:
            self._spilled[start] = start + len(data)

    def _catch_up(self) -> None:
        while True:
            if (data := self._held.pop(self._hashed, None)) is not None:
                self._held_bytes -= len(data)
                self._sha.update(data)
                self._hashed += len(data)
            elif (end := self._spilled.pop(self._hashed, None)) is not None and self._read_back is not None:
                while self._hashed < end:
                    chunk = self._read_back(self._hashed, min(_HASH_CHUNK, end - self._hashed))
                    self._sha.update(chunk)
                    self._hashed += len(chunk)
            else:
                return

    def result(self, size: int) -> str | None:
        """The digest if the writes covered ``[0, size)`` exactly once, else None (re-hash the content)."""
        if self._broken or self._held or self._spilled or self._hashed != size:
            return None
        return self._sha.hexdigest()


class RangeSink:
    """A seekable write-only file for s3transfer, which writes each range at its offset (one IO thread)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._position = 0
        self._digest: str | None = None

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
            start = self._position
            self._store(start, data)
            self._position = start + len(data)
        return len(data)

    def _store(self, start: int, data: bytes) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def size(self) -> int:
        raise NotImplementedError

    def hexdigest(self) -> str:
        """The content's sha256, computed once (streamed while writing when it could be)."""
        if self._digest is None:
            self._digest = self._compute_digest()
        return self._digest

    def _compute_digest(self) -> str:
        raise NotImplementedError


class _HashingFile(RangeSink):
    """Writes to a staging file and hashes while writing; ranges ahead of the frontier wait in memory (up to
    ``HOLD_BYTES``), so the file is not read back unless a stalled range makes more than that wait."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        self._file = path.open("x+b")
        self._fd = self._file.fileno()
        self._hash = StreamHash(hold=HOLD_BYTES, read_back=lambda offset, n: os.pread(self._fd, n, offset))

    def _store(self, start: int, data: bytes) -> None:
        _pwrite_all(self._fd, data, start)
        self._hash.update(start, data)

    def close(self) -> None:
        self._file.close()

    def size(self) -> int:
        return os.fstat(self._fd).st_size if not self._file.closed else self.path.stat().st_size

    def _compute_digest(self) -> str:
        return self._hash.result(self.size()) or sha256_file(self.path)


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
    """Download all ``files`` into ``staging`` concurrently, verified; return their sha256s."""
    with ExitStack() as stack:

        def open_sink(entry: FileEntry) -> _HashingFile:
            path = _target_path(staging, entry.key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.unlink(missing_ok=True)  # a second attempt starts the file afresh
            sink = _HashingFile(path)
            stack.callback(sink.close)
            return sink

        return {
            key: sink.hexdigest() for key, sink in fetch(client, transfer, location, files, open_sink).items()
        }


Sink = TypeVar("Sink", bound=RangeSink)


def fetch(
    client: BaseClient,
    transfer: TransferConfig,
    location: S3Location,
    files: tuple[FileEntry, ...],
    open_sink: Callable[[FileEntry], Sink],
) -> dict[str, Sink]:
    """Fetch every file into a sink of its own concurrently (large ones as parallel ranged GETs), check each
    one's size and sha256 against the manifest, and return the sinks. Raises a ModelStoreError naming the
    object.

    A file that arrives short without any error is fetched once more before it counts as changed: a response
    cut inside its headers loses its Content-Length, so neither botocore nor s3transfer notices that the body
    ended early.
    """
    sinks = _transfer(client, transfer, location, files, open_sink)
    short = tuple(entry for entry in files if sinks[entry.key].size() < entry.size)
    if short:
        sinks.update(_transfer(client, transfer, location, short, open_sink))
    for entry in files:
        sink = sinks[entry.key]
        size, digest = sink.size(), sink.hexdigest()
        if size != entry.size or digest != entry.sha256:
            raise HashMismatch(
                f"{location.uri(entry.key)}: got {size} bytes with sha256 {digest[:12]}…, "
                f"manifest says {entry.size} bytes with sha256 {entry.sha256[:12]}…; the object changed "
                f"after publishing (a publish in progress?); re-run `{PUBLISH_COMMAND}`"
            )
    return sinks


def _transfer(
    client: BaseClient,
    transfer: TransferConfig,
    location: S3Location,
    files: tuple[FileEntry, ...],
    open_sink: Callable[[FileEntry], Sink],
) -> dict[str, Sink]:
    sinks = {entry.key: open_sink(entry) for entry in files}
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
    return sinks
