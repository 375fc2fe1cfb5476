"""Soak: thousands of sequential invocations in one process, as one warm Lambda sandbox would serve them.

Every sample event (each shape, successes and errors) in turn; each answer must equal the first one given for
that event, and memory, open file descriptors and threads must stay bounded. The default suite runs 500
invocations; ``python -m pytest -m slow -s tests/integration/test_soak.py`` runs 10,000 and prints the
figures.
"""

from __future__ import annotations

import copy
import gc
import json
import sys
from collections.abc import Iterator
from contextlib import redirect_stdout
from dataclasses import dataclass
from io import StringIO
from pathlib import Path
from time import perf_counter
from types import ModuleType
from typing import Any

import psutil
import pytest

from tests.fixtures.backends import one_thread
from tests.fixtures.events import EXPECTED, load
from tests.fixtures.lambda_env import FakeContext, init_app

# Generous bounds over the measured growth after warm-up (+0.2 MB at 500 and at 10,000: docs/reliability.md).
RSS_GROWTH_LIMIT_MB = {500: 10.0, 10_000: 16.0}
WARMUP = 100


@dataclass(frozen=True)
class Usage:
    rss_mb: float
    fds: int
    threads: int

    @classmethod
    def now(cls) -> Usage:
        gc.collect()
        proc = psutil.Process()
        return cls(proc.memory_info().rss / 2**20, proc.num_fds(), proc.num_threads())


@dataclass(frozen=True)
class SoakResult:
    invocations: int
    start: Usage
    end: Usage
    seconds: float

    def report(self) -> str:
        return (
            f"[soak] {self.invocations} invocations in {self.seconds:.0f} s: "
            f"RSS {self.start.rss_mb:.1f} -> {self.end.rss_mb:.1f} MB "
            f"(+{self.end.rss_mb - self.start.rss_mb:.1f}), open fds {self.start.fds} -> {self.end.fds}, "
            f"threads {self.start.threads} -> {self.end.threads}"
        )


def _outcome(result: Any) -> Any:
    """What must not change between invocations of the same event: status and body."""
    if isinstance(result, dict) and "statusCode" in result:
        return result["statusCode"], json.loads(result["body"])
    return result


class Soak:
    """Invokes the sample events round-robin and checks each outcome against the first one seen."""

    def __init__(self, app: ModuleType) -> None:
        self.app = app
        self.events = {name: load(name) for name in sorted(EXPECTED)}
        self.first: dict[str, Any] = {}
        self.count = 0

    def invoke(self, name: str) -> None:
        with redirect_stdout(StringIO()):  # one EMF metrics line per invocation
            result = self.app.lambda_handler(copy.deepcopy(self.events[name]), FakeContext())
        outcome = _outcome(result)
        expected = self.first.setdefault(name, outcome)
        assert outcome == expected, f"{name}: invocation {self.count} answered differently"
        self.count += 1

    def run(self, invocations: int) -> SoakResult:
        names = list(self.events)
        for i in range(WARMUP):  # allocator pools, lazy imports and caches settle first
            self.invoke(names[i % len(names)])
        start, clock = Usage.now(), perf_counter()
        for i in range(invocations):
            self.invoke(names[i % len(names)])
        return SoakResult(invocations, start, Usage.now(), perf_counter() - clock)


@pytest.fixture(scope="module")
def soak_app(tiny_bert_dir: Path) -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp, one_thread():
        yield init_app(mp, MODEL_LOCAL_PATH=str(tiny_bert_dir))
    sys.modules.pop("handler.app", None)


def _soak(app: ModuleType, invocations: int, capfd: pytest.CaptureFixture[str]) -> SoakResult:
    result = Soak(app).run(invocations)
    with capfd.disabled():  # the figures are the point of the run: show them even under capture
        print(result.report(), flush=True)
    return result


def _assert_bounded(result: SoakResult) -> None:
    assert result.end.fds == result.start.fds, "file descriptors leak"
    assert result.end.threads == result.start.threads, "threads leak"
    assert result.end.rss_mb - result.start.rss_mb < RSS_GROWTH_LIMIT_MB[result.invocations]


def test_soak_500(soak_app: ModuleType, capfd: pytest.CaptureFixture[str]) -> None:
    result = _soak(soak_app, 500, capfd)
    _assert_bounded(result)


@pytest.mark.slow
def test_soak_10k(soak_app: ModuleType, capfd: pytest.CaptureFixture[str]) -> None:
    result = _soak(soak_app, 10_000, capfd)
    _assert_bounded(result)
