"""The model store's memory mode: a variant's files downloaded straight into memory, verified while they
arrive, and handed to the engine as ``MemoryFiles``; nothing is written to MODEL_DIR or anywhere else.

For sandboxes whose ``/tmp`` cannot hold the files (SnapStart allows at most 512 MB, roberta-base's torch
weights alone are 476 MB), and for SnapStart generally: its snapshot holds the loaded model anyway, so a disk
copy would only be a second one. Memory use: each range is kept as the bytes object it arrived in (hashed at
the frontier as it comes, ``StreamHash``) and joined once per file, so a file's bytes exist twice only
during that join; the engine's loaders then hold the file and what they build from it until the store
releases the file (``ModelFiles.release``). Peak: about twice the weights (measured in docs/model-store.md).
"""

from __future__ import annotations

import hashlib
from itertools import pairwise
from typing import TYPE_CHECKING

from handler.store.download import RangeSink, StreamHash, fetch

if TYPE_CHECKING:
    from boto3.s3.transfer import TransferConfig
    from botocore.client import BaseClient

    from handler.store.manifest import FileEntry
    from handler.store.s3 import S3Location


class MemorySink(RangeSink):
    """Keeps every write as it came; ``value`` puts them in file order."""

    def __init__(self) -> None:
        super().__init__()
        self._writes: list[tuple[int, bytes]] = []  # in arrival order
        self._hash = StreamHash(hold=None)  # holds references to the same bytes objects: no extra memory
        self._size = 0
        self._value: bytes | None = None

    def _store(self, start: int, data: bytes) -> None:
        self._writes.append((start, bytes(data)))  # s3transfer hands bytes; a copy only if it ever does not
        self._hash.update(start, self._writes[-1][1])
        self._size = max(self._size, start + len(data))

    def size(self) -> int:
        return self._size

    def value(self) -> bytes:
        """The file's bytes (computed once; the pieces are dropped as soon as they are joined)."""
        if self._value is None:
            ordered = sorted(self._writes, key=lambda w: w[0])
            contiguous = all(a + len(d) == b for (a, d), (b, _) in pairwise(ordered))
            if contiguous and (not ordered or ordered[0][0] == 0):
                self._value = b"".join(data for _, data in ordered)
            else:  # a retried range wrote some bytes twice: replay the writes in order, as a file would
                buffer = bytearray(self._size)
                for start, data in self._writes:
                    buffer[start : start + len(data)] = data
                self._value = bytes(buffer)
            self._writes = []
        return self._value

    def _compute_digest(self) -> str:
        return self._hash.result(self._size) or hashlib.sha256(self.value()).hexdigest()


def download_to_memory(
    client: BaseClient, transfer: TransferConfig, location: S3Location, files: tuple[FileEntry, ...]
) -> dict[str, bytes]:
    """Every file's verified bytes by key (size and sha256 checked against the manifest, as on disk)."""
    sinks = fetch(client, transfer, location, files, lambda _: MemorySink())
    return {key: sink.value() for key, sink in sinks.items()}
