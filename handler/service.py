"""The one answer path behind every invocation shape: model availability, limits, time budget, inference.

Event adapters (``handler.api``) turn events into a ``PredictRequest`` and call ``QAService``; they never see the
init glue. The time budget is an estimate of milliseconds per window (from the warm-up, then every request) held
against the invocation's remaining time: a request that would not finish is refused before it starts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler.answer_cache import AnswerCache
from handler.contract import PredictRequest, shape_answers
from handler.engine import EncodedRequest, QAEngine
from handler.errors import LimitExceeded, ModelUnavailable, TimeBudgetExceeded
from handler.observability import metrics, subsegment
from handler.settings import Settings
from handler.store.golden import Golden

# Kept back from the remaining invocation time for serialisation, logging and the metrics flush.
SAFETY_MARGIN_MS = 500
# Weight of the newest observation in the per-window latency estimate.
EWMA_ALPHA = 0.3


@dataclass
class TimeBudget:
    """Milliseconds per window, learned as an exponentially weighted mean; ``None`` until first observed."""

    ms_per_window: float | None = None
    margin_ms: int = SAFETY_MARGIN_MS

    def observe(self, windows: int, elapsed_ms: float) -> None:
        per_window = elapsed_ms / max(windows, 1)
        prev = self.ms_per_window
        self.ms_per_window = per_window if prev is None else EWMA_ALPHA * per_window + (1 - EWMA_ALPHA) * prev

    def fits(self, windows: int, remaining_ms: int | None) -> bool:
        if remaining_ms is None or self.ms_per_window is None:
            return True
        return windows * self.ms_per_window <= remaining_ms - self.margin_ms

    def check(self, windows: int, remaining_ms: int | None) -> None:
        if not self.fits(windows, remaining_ms):
            expected = windows * (self.ms_per_window or 0.0)
            raise TimeBudgetExceeded(
                f"the request needs {windows} windows (~{expected:.0f} ms) but the function has "
                f"{remaining_ms} ms left; send less text or raise the function timeout"
            )


@dataclass(frozen=True)
class CachedResponse:
    """A whole request answered from the cache: the response a fresh answer would be, and its windows."""

    body: Any
    windows: int


@dataclass
class QAService:
    """``engine`` is None when the model failed to load; ``unavailable`` then says why (safe to show)."""

    engine: QAEngine | None
    settings: Settings
    info: dict[str, Any] = field(default_factory=dict)
    unavailable: str = "the model is not loaded"
    budget: TimeBudget = field(default_factory=TimeBudget)
    clock: Callable[[], float] = perf_counter  # seconds; injected by tests
    golden: Golden | None = None  # the manifest's golden answers: what a self-check asks (api.self_check)
    cache: AnswerCache | None = None  # None: ANSWER_CACHE_ENTRIES=0

    @property
    def variant(self) -> str:
        """The variant answering: the settings' choice, or its fallback when the model lacked it."""
        return self.engine.backend.name if self.engine is not None else self.settings.variant.name

    def health(self) -> dict[str, Any]:
        if self.engine is None:
            return {"status": "unavailable", "error": self.unavailable}
        return {"status": "ok", **self.info}

    def predict(self, request: PredictRequest, remaining_ms: int | None = None) -> Any:
        hit = self.cached(request)
        if hit is not None:
            return hit.body
        return self.answer(self.prepare(request), batch=request.is_batch, remaining_ms=remaining_ms)

    def cached(self, request: PredictRequest) -> CachedResponse | None:
        """The request answered from the cache when every one of its pairs is there, else None (a miss).

        The same limits apply as to a fresh request, with the windows the answers took when computed.
        """
        if self.cache is None:
            return None
        self._engine()
        pairs = self._check_limits(request)
        params = request.params()
        found = []
        for question, context in pairs:
            hit = self.cache.get(self.cache.key(params, question, context))
            if hit is None:
                metrics.add_metric(name="AnswerCacheMisses", unit=MetricUnit.Count, value=1)
                return None
            found.append(hit)
        windows = sum(h.windows for h in found)
        self._check_windows(windows)
        metrics.add_metric(name="AnswerCacheHits", unit=MetricUnit.Count, value=1)
        body = shape_answers([h.answers for h in found], top_k=params.top_k, batch=request.is_batch)
        return CachedResponse(body, windows)

    def prepare(self, request: PredictRequest) -> EncodedRequest:
        """Limits and tokenization: the windows are the work, known before any of it is done."""
        engine = self._engine()
        pairs = self._check_limits(request)
        with subsegment("tokenize"):
            encoded = engine.encode(pairs, request.params())
        self._check_windows(encoded.num_windows)
        return encoded

    def answer(self, encoded: EncodedRequest, *, batch: bool, remaining_ms: int | None = None) -> Any:
        """Inference on prepared windows, refused up front when the time left cannot cover them."""
        engine = self._engine()
        windows = encoded.num_windows
        self.budget.check(windows, remaining_ms)
        start = self.clock()
        with subsegment("inference") as segment:
            answers = engine.predict(encoded)
            segment.put_annotation("windows", windows)
        elapsed_ms = (self.clock() - start) * 1000
        self.budget.observe(windows, elapsed_ms)
        metrics.add_metric(name="InferenceMs", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name="WindowsPerRequest", unit=MetricUnit.Count, value=windows)
        metrics.add_metric(name="InputsPerRequest", unit=MetricUnit.Count, value=len(encoded.pairs))
        if self.cache is not None:
            per_pair = Counter(w.pair for w in encoded.windows)
            for i, ((question, context), found) in enumerate(zip(encoded.pairs, answers, strict=True)):
                self.cache.put(self.cache.key(encoded.params, question, context), found, per_pair[i])
        return shape_answers(answers, top_k=encoded.params.top_k, batch=batch)

    def _engine(self) -> QAEngine:
        if self.engine is None:
            raise ModelUnavailable(self.unavailable)
        return self.engine

    def _check_windows(self, windows: int) -> None:
        if windows > self.settings.max_windows:
            raise LimitExceeded(
                f"the request needs {windows} model windows; the limit is {self.settings.max_windows} "
                "(send shorter contexts, fewer inputs, or a larger max_seq_len)"
            )

    def _check_limits(self, request: PredictRequest) -> list[tuple[str, str]]:
        pairs = request.pairs()
        s = self.settings
        if len(pairs) > s.max_batch_size:
            raise LimitExceeded(f"batch of {len(pairs)} inputs exceeds the limit of {s.max_batch_size}")
        for i, (_, context) in enumerate(pairs):
            if len(context) > s.max_context_chars:
                where = f"inputs[{i}].context" if request.is_batch else "context"
                raise LimitExceeded(
                    f"{where} has {len(context)} characters; the limit is {s.max_context_chars}"
                )
        return pairs
