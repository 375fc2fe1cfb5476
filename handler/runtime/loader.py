"""Init-phase glue: settings -> model store -> QA engine -> warm-up inference -> the service, once per sandbox.

A model that fails to load does not crash init (which Lambda would retry on every request, each one a 502):
the failure is logged once and every request gets a 503 naming it. Configuration errors do crash init: they
are deploy bugs that no retry fixes, and the runtime reports them through /init/error.

Init timings go to one log line and to metrics, not to X-Ray: the X-Ray SDK discards subsegments opened while
"Lambda worker still initializing" (there is no facade segment before the first invocation).
"""

from __future__ import annotations

import platform
from time import perf_counter

from aws_lambda_powertools.metrics import MetricUnit

from handler.engine import QAEngine
from handler.observability import logger, metrics
from handler.service import QAService, TimeBudget
from handler.settings import Settings
from handler.store.s3 import S3Location
from handler.store.warm import warm_from_settings

WARMUP_PAIR = ("What is warmed up?", "The first inference warms up the model before real traffic arrives.")


def load_service(settings: Settings) -> QAService:
    start = perf_counter()
    try:
        report = warm_from_settings(settings)
        stored = perf_counter()
        try:
            engine = QAEngine.load(
                report.model, settings.variant, max_batch_windows=settings.max_batch_windows
            )
        finally:
            report.model.release()  # in memory mode the engine now owns what it built from the bytes
        loaded = perf_counter()
        engine.answer([WARMUP_PAIR])
        warmed = perf_counter()
    except Exception as exc:
        logger.exception("model failed to load", extra={"error_type": type(exc).__name__})
        metrics.add_metric(name="ModelLoadErrors", unit=MetricUnit.Count, value=1)
        reason = f"the model failed to load at init ({type(exc).__name__}); see the logs"
        return QAService(None, settings, unavailable=reason)
    phases = {"store_s": stored - start, "load_s": loaded - stored, "warmup_s": warmed - loaded}
    seconds = warmed - start
    metrics.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=seconds)
    metrics.add_metric(name="ModelDownloadBytes", unit=MetricUnit.Bytes, value=report.bytes)
    info = {
        "model": report.model_name or engine.model_name,
        "revision": report.revision,
        "source": "s3" if isinstance(settings.model_source, S3Location) else "image",
        "store": report.store,
        "python": platform.python_version(),
        **engine.backend.describe(),
    }
    timings = {name: round(value, 3) for name, value in phases.items()}
    logger.info("model loaded", extra={"load_seconds": round(seconds, 3), **timings, **info})
    warmup_ms = phases["warmup_s"] * 1000  # one window: the first estimate of the time budget
    return QAService(engine, settings, info=info, budget=TimeBudget(ms_per_window=warmup_ms))
