"""The answer cache on its own: LRU order, both bounds (the byte bound measured with tracemalloc), the key."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from handler.answer_cache import (
    DEFAULT_ENTRIES,
    DEFAULT_MB,
    ENTRIES_BOUNDS,
    MB_BOUNDS,
    AnswerCache,
    ModelIdentity,
    cache_key,
    make_cache,
)
from handler.engine import Answer, QAParams
from handler.errors import ConfigurationError
from handler.settings import Settings

IDENTITY = ModelIdentity("minilm", "rev1", "ab" * 32, "onnx-int8")
PARAMS = QAParams()


def answers(n: int, text: str = "the answer") -> list[Answer]:
    return [Answer(f"{text} {i}", 0.5 / (i + 1), i, i + len(text) + 2) for i in range(n)]


def test_a_hit_returns_what_was_stored_and_a_miss_none() -> None:
    cache = AnswerCache(IDENTITY, max_entries=4, max_bytes=1 << 20)
    key = cache.key(PARAMS, "q", "c")
    assert cache.get(key) is None
    cache.put(key, answers(3), windows=2)
    hit = cache.get(key)
    assert hit is not None and hit.answers == answers(3) and hit.windows == 2
    assert cache.get(cache.key(PARAMS, "q", "c ")) is None


def test_least_recently_used_is_evicted_first() -> None:
    cache = AnswerCache(IDENTITY, max_entries=3, max_bytes=1 << 20)
    keys = [cache.key(PARAMS, f"q{i}", "c") for i in range(4)]
    for key in keys[:3]:
        cache.put(key, answers(1), 1)
    assert cache.get(keys[0]) is not None  # q0 is now the most recently used
    cache.put(keys[3], answers(1), 1)
    assert len(cache) == 3
    assert cache.get(keys[1]) is None, "q1 was the least recently used"
    assert all(cache.get(k) is not None for k in (keys[0], keys[2], keys[3]))


def test_the_byte_bound_evicts_and_holds() -> None:
    one = AnswerCache(IDENTITY, max_entries=1000, max_bytes=1 << 20)
    one.put(one.key(PARAMS, "q", "c"), answers(1, "x" * 1000), 1)
    entry = one.bytes
    cache = AnswerCache(IDENTITY, max_entries=1000, max_bytes=entry * 3 + entry // 2)
    keys = [cache.key(PARAMS, f"q{i}", "c") for i in range(10)]
    for key in keys:
        cache.put(key, answers(1, "x" * 1000), 1)
        assert cache.bytes <= cache.max_bytes
    assert len(cache) == 3 and [cache.get(k) is not None for k in keys[-4:]] == [False, True, True, True]


def test_an_entry_larger_than_the_bound_is_not_stored() -> None:
    cache = AnswerCache(IDENTITY, max_entries=10, max_bytes=2000)
    small = cache.key(PARAMS, "small", "c")
    cache.put(small, answers(1), 1)
    cache.put(cache.key(PARAMS, "big", "c"), answers(1, "y" * 5000), 1)
    assert len(cache) == 1 and cache.get(small) is not None, "a too-large answer must not evict the others"


def test_storing_a_key_again_replaces_its_entry_and_its_bytes() -> None:
    cache = AnswerCache(IDENTITY, max_entries=10, max_bytes=1 << 20)
    key = cache.key(PARAMS, "q", "c")
    cache.put(key, answers(5, "z" * 500), 3)
    cache.put(key, answers(1), 1)
    fresh = AnswerCache(IDENTITY, max_entries=10, max_bytes=1 << 20)
    fresh.put(key, answers(1), 1)
    assert len(cache) == 1 and cache.bytes == fresh.bytes
    hit = cache.get(key)
    assert hit is not None and hit.windows == 1 and hit.answers == answers(1)


@pytest.mark.parametrize("text_len", [10, 3000])
def test_real_memory_stays_within_the_byte_bound(text_len: int) -> None:
    """What a full cache keeps alive (tracemalloc: answers built, stored, then dropped by the caller)."""
    bound = 256 * 1024
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        cache = AnswerCache(IDENTITY, max_entries=1_000_000, max_bytes=bound)
        for i in range(2000):
            found = answers(3, f"{i:06d}" + "w" * text_len)
            cache.put(cache_key(IDENTITY, PARAMS, f"question {i}", "context"), found, 1)
        del found
        gc.collect()
        used = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0 < len(cache) < 2000, "the test must fill the cache past its bound"
    assert cache.bytes <= bound
    assert used <= bound, f"{used} bytes allocated for a {bound}-byte cache of {len(cache)} entries"
    assert used >= bound // 4, f"the accounting ({cache.bytes}) should not be far above the real use ({used})"


def test_the_entry_bound_holds() -> None:
    cache = AnswerCache(IDENTITY, max_entries=5, max_bytes=1 << 20)
    for i in range(50):
        cache.put(cache.key(PARAMS, f"q{i}", "c"), answers(1), 1)
    assert len(cache) == 5


VARIED_PARAMS = {
    "top_k": 2,
    "handle_impossible_answer": True,
    "max_answer_len": 16,
    "max_seq_len": 256,
    "doc_stride": 64,
    "max_question_len": 32,
}


def test_the_key_covers_every_parameter() -> None:
    assert set(VARIED_PARAMS) == set(QAParams.model_fields), "a new parameter must be added here"
    base = cache_key(IDENTITY, PARAMS, "q", "c")
    for name, value in VARIED_PARAMS.items():
        assert cache_key(IDENTITY, QAParams(**{name: value}), "q", "c") != base, name


@pytest.mark.parametrize("field", ["name", "revision", "digest", "variant"])
def test_the_key_covers_the_model(field: str) -> None:
    other = ModelIdentity(**{**IDENTITY.__dict__, field: getattr(IDENTITY, field) + "x"})
    assert cache_key(other, PARAMS, "q", "c") != cache_key(IDENTITY, PARAMS, "q", "c")


def test_the_key_keeps_question_and_context_apart() -> None:
    assert cache_key(IDENTITY, PARAMS, "ab", "c") != cache_key(IDENTITY, PARAMS, "a", "bc")
    assert cache_key(IDENTITY, PARAMS, 'a","b', "c") != cache_key(IDENTITY, PARAMS, "a", 'b","c')
    assert cache_key(IDENTITY, PARAMS, "q", "c") == cache_key(IDENTITY, QAParams(top_k=1), "q", "c")


def test_zero_entries_turns_the_cache_off() -> None:
    assert make_cache(IDENTITY, 0, DEFAULT_MB) is None
    cache = make_cache(IDENTITY, DEFAULT_ENTRIES, DEFAULT_MB)
    assert cache is not None and cache.max_bytes == DEFAULT_MB * 1024 * 1024


def test_settings_read_both_variables_with_their_bounds(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("MODEL_LOCAL_PATH", str(tmp_path))
    monkeypatch.delenv("ANSWER_CACHE_MB", raising=False)
    monkeypatch.setenv("ANSWER_CACHE_ENTRIES", "0")
    settings = Settings.from_env()
    assert (settings.answer_cache_entries, settings.answer_cache_mb) == (0, DEFAULT_MB)
    monkeypatch.delenv("ANSWER_CACHE_ENTRIES")
    assert Settings.from_env().answer_cache_entries == DEFAULT_ENTRIES
    for value, message in (("0", f">= {MB_BOUNDS[0]}"), (str(MB_BOUNDS[1] + 1), f"<= {MB_BOUNDS[1]}")):
        monkeypatch.setenv("ANSWER_CACHE_MB", value)
        with pytest.raises(ConfigurationError, match=f"ANSWER_CACHE_MB must be {message}"):
            Settings.from_env()
    monkeypatch.setenv("ANSWER_CACHE_MB", "1")
    monkeypatch.setenv("ANSWER_CACHE_ENTRIES", str(ENTRIES_BOUNDS[1] + 1))
    with pytest.raises(ConfigurationError, match="ANSWER_CACHE_ENTRIES must be <="):
        Settings.from_env()
