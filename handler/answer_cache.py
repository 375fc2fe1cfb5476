"""A per-sandbox answer cache: QA traffic repeats (FAQ pages, retries, the same document asked again).

An LRU bounded both by entries (``ANSWER_CACHE_ENTRIES``) and by bytes (``ANSWER_CACHE_MB``), keyed by the
SHA-256 of everything an answer depends on: the model (name, revision and manifest digest), the variant, every
decoding parameter, the question and the context. Neither the text nor the key is ever logged; the cache holds
the key (a digest, not the text) and the answers, which are substrings of the context, in this process only.

A hit returns the answers the model gave the first time, with the window count they cost, so the request
limits (``MAX_WINDOWS``) still refuse exactly what a fresh request would. The byte bound counts the Python
objects an entry keeps alive (``sys.getsizeof`` of each, plus the dict's per-entry overhead), so the cache's
real memory stays under it (tests/unit/test_answer_cache.py measures it with tracemalloc).
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

from handler.engine import Answer, QAParams

DEFAULT_ENTRIES = 1024  # ANSWER_CACHE_ENTRIES; 0 turns the cache off
ENTRIES_BOUNDS = (0, 1_000_000)
DEFAULT_MB = 16  # ANSWER_CACHE_MB
MB_BOUNDS = (1, 1024)
# An OrderedDict entry beyond its key and value: hash-table slot and index (table kept <= 2/3 full, and it
# doubles), plus the linked-list node that keeps the LRU order. Generous on purpose: the bound must hold.
ENTRY_OVERHEAD_BYTES = 200

_Stored = tuple[tuple[tuple[str, float, int, int], ...], int]  # (answers as plain tuples, windows)


@dataclass(frozen=True)
class ModelIdentity:
    """What makes one model's answers differ from another's: part of every key."""

    name: str
    revision: str
    digest: str  # the manifest's SHA-256 (empty for a model baked into the image)
    variant: str


@dataclass(frozen=True)
class Cached:
    answers: list[Answer]
    windows: int  # the windows the answer took when it was computed: the request limits count them


def cache_key(identity: ModelIdentity, params: QAParams, question: str, context: str) -> bytes:
    """SHA-256 of a JSON array of every input (JSON escaping keeps the fields apart, whatever they contain)."""
    fields = [
        identity.name,
        identity.revision,
        identity.digest,
        identity.variant,
        params.model_dump(mode="json"),
        question,
        context,
    ]
    raw = json.dumps(fields, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode("utf-8")).digest()


def _footprint(key: bytes, stored: _Stored) -> int:
    """Bytes one entry keeps alive: key, value tuples, strings, numbers, and the dict's own share."""
    answers, windows = stored
    size = sys.getsizeof(key) + sys.getsizeof(stored) + sys.getsizeof(answers) + sys.getsizeof(windows)
    size += sys.getsizeof((stored, 0)) + sys.getsizeof(1 << 40)  # the (value, size) pair the dict holds
    for item in answers:
        size += sys.getsizeof(item) + sum(sys.getsizeof(field) for field in item)
    return size + ENTRY_OVERHEAD_BYTES


class AnswerCache:
    """LRU of answers per (model, parameters, question, context); ``max_bytes`` bounds what it holds."""

    def __init__(self, identity: ModelIdentity, *, max_entries: int, max_bytes: int) -> None:
        self.identity = identity
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = self.misses = 0  # since init, for benchmarks; the function reports them as metrics
        self._entries: OrderedDict[bytes, tuple[_Stored, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def key(self, params: QAParams, question: str, context: str) -> bytes:
        return cache_key(self.identity, params, question, context)

    def get(self, key: bytes) -> Cached | None:
        found = self._entries.get(key)
        if found is None:
            self.misses += 1
            return None
        self.hits += 1
        self._entries.move_to_end(key)
        (answers, windows), _ = found
        return Cached([Answer(*a) for a in answers], windows)

    def put(self, key: bytes, answers: Sequence[Answer], windows: int) -> None:
        """Stores (or refreshes) an entry, evicting least recently used ones until both bounds hold."""
        stored: _Stored = (tuple((a.answer, a.score, a.start, a.end) for a in answers), windows)
        size = _footprint(key, stored)
        if size > self.max_bytes or self.max_entries < 1:
            return
        old = self._entries.pop(key, None)
        if old is not None:
            self.bytes -= old[1]
        while self._entries and (
            len(self._entries) >= self.max_entries or self.bytes + size > self.max_bytes
        ):
            _, (_, evicted) = self._entries.popitem(last=False)
            self.bytes -= evicted
        self._entries[key] = (stored, size)
        self.bytes += size


def make_cache(identity: ModelIdentity, entries: int, megabytes: int) -> AnswerCache | None:
    """The sandbox's cache from its settings; None when ``ANSWER_CACHE_ENTRIES`` is 0 (off)."""
    if entries < 1:
        return None
    return AnswerCache(identity, max_entries=entries, max_bytes=megabytes * 1024 * 1024)
