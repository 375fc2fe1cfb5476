"""Init-phase glue: settings -> model store -> QA engine -> warm-up inference -> the service, once per sandbox.

A model that fails to load does not crash init (which Lambda would retry on every request, each one a 502):
the failure is logged once and every request gets a 503 naming it. Configuration errors do crash init: they
are deploy bugs that no retry fixes, and the runtime reports them through /init/error.

The download starts first (``ModelLoading``, in a thread) and overlaps what init does next: importing the
event layers and the backend (ONNX Runtime, or torch and transformers) in the main thread. Network reads and
hashing release the GIL, so on Lambda the two mostly add up to the longer of them, not their sum.

Init timings go to one log line and to metrics, not to X-Ray: the X-Ray SDK discards subsegments opened while
"Lambda worker still initializing" (there is no facade segment before the first invocation).
"""

from __future__ import annotations

import importlib
import platform
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from time import perf_counter
from typing import Any

from aws_lambda_powertools.metrics import MetricUnit

from handler.answer_cache import ModelIdentity, make_cache
from handler.engine import QAEngine
from handler.errors import MODEL_LOAD_FAILED
from handler.hardware import cpu, threads
from handler.observability import logger, metrics
from handler.service import QAService, TimeBudget
from handler.settings import Settings
from handler.store import WarmupReport, open_baked, warm_from_s3
from handler.store.s3 import S3Location
from handler.variants import Variant

WARMUP_PAIR = ("What is warmed up?", "The first inference warms up the model before real traffic arrives.")


class ModelLoading:
    """The init's model load, begun at construction so the download overlaps the caller's further imports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._started = perf_counter()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-store")
        self._store = self._pool.submit(warm_from_settings, settings)

    def service(self) -> QAService:
        """Waits for the download, loads the engine, runs the warm-up inference: the service, or a 503 one."""
        settings = self.settings
        try:
            importlib.import_module(settings.variant.loader.partition(":")[0])  # while the download runs
            imported = perf_counter()
            report = self._store.result()
            stored = perf_counter()
            variant = _served(settings, report.variant)
            try:
                engine = QAEngine.load(report.model, variant, max_batch_windows=settings.max_batch_windows)
            finally:
                report.model.release()  # in memory mode the engine now owns what it built from the bytes
            loaded = perf_counter()
            engine.answer([WARMUP_PAIR])
            warmed = perf_counter()
        except Exception as exc:
            logger.exception(MODEL_LOAD_FAILED, extra={"error_type": type(exc).__name__, "error": str(exc)})
            metrics.add_metric(name="ModelLoadErrors", unit=MetricUnit.Count, value=1)
            reason = f"the model failed to load at init ({type(exc).__name__}); see the logs"
            return QAService(None, settings, unavailable=reason)
        finally:
            self._pool.shutdown(wait=True)
        phases = {
            "store_s": report.seconds,  # in its thread, from the start
            "store_wait_s": stored - imported,  # what the download added after the imports
            "load_s": loaded - stored,
            "warmup_s": warmed - loaded,
        }
        seconds = warmed - self._started
        metrics.add_metric(name="ModelLoadSeconds", unit=MetricUnit.Seconds, value=seconds)
        metrics.add_metric(name="ModelDownloadBytes", unit=MetricUnit.Bytes, value=report.bytes)
        info = {
            "model": report.model_name or engine.model_name,
            "revision": report.revision,
            "source": "s3" if isinstance(settings.model_source, S3Location) else "image",
            "store": report.store,
            "downloaded_bytes": report.bytes,
            "python": platform.python_version(),
            **engine.backend.describe(),
            "fidelity": fidelity(variant, report.fidelity),
        }
        timings = {name: round(value, 3) for name, value in phases.items()}
        logger.info("model loaded", extra={"load_seconds": round(seconds, 3), **timings, **info, **sandbox()})
        warmup_ms = phases["warmup_s"] * 1000  # one window: the first estimate of the time budget
        identity = ModelIdentity(info["model"], report.revision, report.manifest_sha256, variant.name)
        cache = make_cache(identity, settings.answer_cache_entries, settings.answer_cache_mb)
        budget = TimeBudget(ms_per_window=warmup_ms)
        return QAService(engine, settings, info=info, budget=budget, golden=report.golden, cache=cache)


def sandbox() -> dict[str, str]:
    """The hardware this sandbox got and the threads it chose: Lambda's x86 hosts differ (AVX2 is all it
    promises), so a user's logs must say which CPU served a slow request."""
    described = cpu.describe()  # one read of /proc/cpuinfo
    return {
        "cpu_model": described["model"],
        "cpu_int8": ", ".join(cpu.int8_listing(described["int8"])) or "none",
        **threads.plan().describe(),
    }


def fidelity(variant: Variant, measured: Mapping[str, Any] | None) -> dict[str, Any] | str | None:
    """What /health says of the answers' fidelity: None for an exact variant, else the publish-time figures."""
    if variant.reference is None:
        return None
    return dict(measured) if measured else "not measured (published before fidelity was recorded)"


def _served(settings: Settings, name: str) -> Variant:
    """The variant the store found: the settings' choice, or its fallback when the model lacks the choice."""
    fallback = settings.fallback
    if fallback is None or fallback.name != name:
        return settings.variant
    logger.warning(
        f"the model has no {settings.variant.name}, this CPU's choice: serving {name}",
        extra={
            "chosen": settings.variant.name,
            "served": name,
            "fix": f"publish with {settings.variant.name}",
        },
    )
    return fallback


def warm_from_settings(settings: Settings) -> WarmupReport:
    """The model as the settings place it: baked into the image (MODEL_LOCAL_PATH) wins over S3 (MODEL_S3_URI)."""
    variant, source = settings.variant.name, settings.model_source
    fallback = settings.fallback.name if settings.fallback else None
    if isinstance(source, S3Location):
        return warm_from_s3(
            source,
            settings.model_dir,
            variant,
            mode=settings.model_store,
            snapstart=settings.snapstart,
            fallback=fallback,
        )
    return open_baked(source, variant, fallback)


def load_service(settings: Settings) -> QAService:
    """The whole init's model part at once (nothing to overlap it with)."""
    return ModelLoading(settings).service()
