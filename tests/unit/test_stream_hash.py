"""StreamHash: the sha256 of ranges written in any order, computed as they arrive, and honest about retries."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handler.store.download import StreamHash
from handler.store.memory import MemorySink

DATA = b"".join(hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(313))[:10_000]


def pieces(data: bytes, size: int) -> list[tuple[int, bytes]]:
    return [(i, data[i : i + size]) for i in range(0, len(data), size)]


@settings(max_examples=200, deadline=None)
@given(
    size=st.integers(97, 3000),
    rnd=st.randoms(use_true_random=False),
    hold=st.sampled_from([None, 0, 500, 4000]),
)
def test_any_arrival_order_gives_the_files_sha256(size: int, rnd: random.Random, hold: int | None) -> None:
    read_back_calls: list[int] = []

    def read_back(offset: int, n: int) -> bytes:
        read_back_calls.append(n)
        return DATA[offset : offset + n]

    streamed = StreamHash(hold=hold, read_back=read_back)
    order = pieces(DATA, size)
    rnd.shuffle(order)
    for start, data in order:
        streamed.update(start, data)
    assert streamed.result(len(DATA)) == hashlib.sha256(DATA).hexdigest()
    if hold is None:
        assert read_back_calls == []  # everything waited in memory: no byte read twice


def test_in_order_writes_are_never_read_back() -> None:
    streamed = StreamHash(hold=0, read_back=lambda *_: pytest.fail("read back"))
    for start, data in pieces(DATA, 700):
        streamed.update(start, data)
    assert streamed.result(len(DATA)) == hashlib.sha256(DATA).hexdigest()


def test_only_what_exceeds_the_hold_is_read_back() -> None:
    read: list[int] = []
    streamed = StreamHash(hold=2500, read_back=lambda offset, n: read.append(n) or DATA[offset : offset + n])
    first, *rest = pieces(DATA, 1000)
    for start, data in rest:  # 9 ranges ahead of the frontier; 2 fit in the hold
        streamed.update(start, data)
    streamed.update(*first)
    assert streamed.result(len(DATA)) == hashlib.sha256(DATA).hexdigest()
    assert sum(read) == 7 * 1000


@pytest.mark.parametrize(
    "writes",
    [
        [(0, DATA[:100]), (0, DATA[:100]), (100, DATA[100:])],  # a retried range behind the frontier
        [(100, DATA[100:]), (100, DATA[100:]), (0, DATA[:100])],  # a retried range still waiting
        [(0, DATA[:100]), (50, DATA[50:])],  # overlapping writes
        [(0, DATA[:100]), (200, DATA[200:])],  # a gap
    ],
    ids=["behind", "waiting", "overlap", "gap"],
)
def test_anything_but_one_exact_cover_asks_for_a_rehash(writes: list[tuple[int, bytes]]) -> None:
    streamed = StreamHash(hold=None)
    for start, data in writes:
        streamed.update(start, data)
    assert streamed.result(len(DATA)) is None


def test_memory_sink_replays_rewrites_like_a_file() -> None:
    sink = MemorySink()
    for start, data in [(5000, DATA[5000:]), (0, b"x" * 5000), (0, DATA[:5000])]:  # the retry fixed [0, 5000)
        sink.seek(start)
        sink.write(data)
    assert sink.size() == len(DATA)
    assert sink.hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert sink.value() == DATA


def test_memory_sink_joins_ranges_without_a_second_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    sink = MemorySink()
    for start, data in reversed(pieces(DATA, 999)):
        sink.seek(start)
        sink.write(data)
    expected = hashlib.sha256(DATA).hexdigest()
    monkeypatch.setattr(hashlib, "sha256", lambda *_: pytest.fail("re-hashed"))  # only the streamed hash
    assert sink.hexdigest() == expected
    assert sink.value() == DATA
