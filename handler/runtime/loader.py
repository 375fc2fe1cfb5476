"""Init-phase glue: settings -> model store -> QA engine -> warm-up inference -> the service, once per sandbox.

A model that fails to load does not crash init (which Lambda would retry on every request, each one a 502):
the failure is logged once and every request gets a 503 naming it. Configuration errors do crash init: they
are deploy bugs that no retry fixes, and the runtime reports them through /init/error.
"""

from __future__ import annotations

import platform
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit

from handler.engine import QAEngine
from handler.observability import logger, metrics, tracer
from handler.service import QAService, TimeBudget
from handler.settings import Settings
from handler.store.s3 import S3Location
from handler.store.warm import warm_from_settings

WARMUP_PAIR = ("What is warmed up?", "The first inference warms up the model before real traffic arrives.")


def load_service(settings: Settings) -> QAService:
    start = perf_counter()
    try:
        with tracer.provider.in_subsegment("warm_model_store"):
            report = warm_from_settings(settings)
        with tracer.provider.in_subsegment("load_model"):
            engine = QAEngine.load(
                report.model_dir, settings.variant, max_batch_windows=settings.max_batch_windows
            )
        with tracer.provider.in_subsegment("warmup_inference"):
            warm_start = perf_counter()
            engine.answer([WARMUP_PAIR])
            warmup_ms = (perf_counter() - warm_start) * 1000
    except Exception as exc:
        logger.exception("model failed to load", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="ModelLoadErrors", unit=MetricUnit.Count, value=1)
        reason = f"the model failed to load at init ({type(exc).__name__}); see the logs"
        return QAService(None, settings, unavailable=reason)
    seconds = perf_counter() - start
    metrics.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=seconds)
    metrics.add_metric(name="ModelDownloadBytes", unit=MetricUnit.Bytes, value=report.bytes)
    info = {
        "model": report.model_name or engine.model_name,
        "revision": report.revision,
        "source": "s3" if isinstance(settings.model_source, S3Location) else "image",
        "python": platform.python_version(),
        **engine.backend.describe(),
    }
    logger.info("model loaded", extra={"load_seconds": round(seconds, 3), **info})
    return QAService(engine, settings, info=info, budget=TimeBudget(ms_per_window=warmup_ms))
