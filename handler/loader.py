"""Init-phase glue: settings -> model store -> QA engine, once per sandbox.

A model that fails to load does not crash init (which Lambda would retry on every request, each one a 502):
the failure is logged once and every request gets a 503 naming it. Configuration errors do crash init: they
are deploy bugs that no retry fixes, and the runtime reports them through /init/error.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler.engine import QAEngine
from handler.observability import logger, metrics, tracer
from handler.settings import Settings
from handler.store import warm_from_settings

WARMUP_PAIR = ("What is warmed up?", "The first inference warms up the model before real traffic arrives.")


@dataclass
class ModelState:
    engine: QAEngine | None
    error: str | None = None  # safe to show callers: no paths, bucket names or stack traces
    info: dict[str, Any] = field(default_factory=dict)
    warmup_ms: float | None = None


def load_model(settings: Settings) -> ModelState:
    start = perf_counter()
    try:
        with tracer.provider.in_subsegment("warm_model_store"):
            report = warm_from_settings(settings)
        with tracer.provider.in_subsegment("load_model"):
            engine = QAEngine.load(
                report.model_dir, backend=settings.backend, max_batch_windows=settings.max_batch_windows
            )
        with tracer.provider.in_subsegment("warmup_inference"):
            warm_start = perf_counter()
            engine.answer([WARMUP_PAIR])
            warmup_ms = (perf_counter() - warm_start) * 1000
    except Exception as exc:
        logger.exception("model failed to load", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="ModelLoadErrors", unit=MetricUnit.Count, value=1)
        return ModelState(
            None, error=f"the model failed to load at init ({type(exc).__name__}); see the logs"
        )
    seconds = perf_counter() - start
    metrics.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=seconds)
    metrics.add_metric(name="ModelDownloadBytes", unit=MetricUnit.Bytes, value=report.bytes)
    info = {
        "model": report.model_name or engine.model_name,
        "revision": report.revision,
        "source": "s3" if settings.model_local_path is None else "image",
        "python": platform.python_version(),
        **engine.backend.describe(),
    }
    logger.info("model loaded", extra={"load_seconds": round(seconds, 3), **info})
    return ModelState(engine, info=info, warmup_ms=warmup_ms)
