"""The one answer path behind every invocation shape: limits, time budget, inference, metrics."""

from __future__ import annotations

from dataclasses import dataclass
from time import perf_counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler.engine import QAEngine
from handler.errors import PayloadTooLarge, TimeBudgetExceeded
from handler.observability import metrics, tracer
from handler.schemas import PredictRequest, shape_answers
from handler.settings import Settings

# Kept back from the remaining invocation time for serialisation, logging and the metrics flush.
SAFETY_MARGIN_MS = 500
# Weight of the newest observation in the per-window latency estimate.
EWMA_ALPHA = 0.3


@dataclass
class Predictor:
    engine: QAEngine
    settings: Settings
    ms_per_window: float | None = None  # learned from warm-up and every request

    def observe(self, windows: int, elapsed_ms: float) -> None:
        per_window = elapsed_ms / max(windows, 1)
        prev = self.ms_per_window
        self.ms_per_window = per_window if prev is None else EWMA_ALPHA * per_window + (1 - EWMA_ALPHA) * prev

    def _check_limits(self, request: PredictRequest) -> list[tuple[str, str]]:
        pairs = request.pairs()
        s = self.settings
        if len(pairs) > s.max_batch_size:
            raise PayloadTooLarge(f"batch of {len(pairs)} inputs exceeds the limit of {s.max_batch_size}")
        for i, (_, context) in enumerate(pairs):
            if len(context) > s.max_context_chars:
                where = f"inputs[{i}].context" if request.is_batch else "context"
                raise PayloadTooLarge(
                    f"{where} has {len(context)} characters; the limit is {s.max_context_chars}"
                )
        return pairs

    def __call__(self, request: PredictRequest, remaining_ms: int | None = None) -> Any:
        pairs = self._check_limits(request)
        with tracer.provider.in_subsegment("tokenize"):
            encoded = self.engine.encode(pairs, request.params())
        windows = encoded.num_windows
        if windows > self.settings.max_windows:
            raise PayloadTooLarge(
                f"the request needs {windows} model windows; the limit is {self.settings.max_windows} "
                "(send shorter contexts, fewer inputs, or a larger max_seq_len)"
            )
        if remaining_ms is not None and self.ms_per_window is not None:
            expected = windows * self.ms_per_window
            if expected > remaining_ms - SAFETY_MARGIN_MS:
                raise TimeBudgetExceeded(
                    f"the request needs {windows} windows (~{expected:.0f} ms) but the function has "
                    f"{remaining_ms} ms left; send less text or raise the function timeout"
                )
        start = perf_counter()
        with tracer.provider.in_subsegment("inference") as subsegment:
            answers = self.engine.predict(encoded)
            subsegment.put_annotation("windows", windows)
        elapsed_ms = (perf_counter() - start) * 1000
        self.observe(windows, elapsed_ms)
        metrics.add_metric(name="InferenceMs", unit=MetricUnit.Milliseconds, value=elapsed_ms)
        metrics.add_metric(name="WindowsPerRequest", unit=MetricUnit.Count, value=windows)
        metrics.add_metric(name="InputsPerRequest", unit=MetricUnit.Count, value=len(pairs))
        return shape_answers(answers, top_k=encoded.params.top_k, batch=request.is_batch)
