"""SnapStart: what runs before Lambda snapshots the initialised sandbox and after it resumes a copy of it.

Under SnapStart (AWS_LAMBDA_INITIALIZATION_TYPE=snap-start) init runs once, when a version is published;
awslambdaric then runs the before-snapshot hooks, calls /runtime/restore/next (the snapshot is taken there)
and, in every environment resumed from it, runs the after-restore hooks before the first event. A hook that
raises fails the publish (/init/error, ``Runtime.BeforeSnapshotError``) or that environment
(/restore/error, ``Runtime.AfterRestoreError``). The hooks are registered with ``snapshot_restore_py``, which
the Python base image and awslambdaric ship; nothing is registered outside SnapStart.

Before the snapshot:
* refuse a sandbox whose model did not load: every restored copy would answer 503 for ever;
* run full-length windows (the model's ``max_seq_len``) so allocator arenas, packed weights and the kernels
  for that shape exist in the snapshot, and take the per-window time estimate from the second one;
* flush the metrics init recorded (once, at publish; otherwise every restored copy would report them again);
* drop boto3's default session (cached credentials) and let the store's S3 client and its connection pool be
  collected: a restored copy may run hours later on another host, where those connections are dead;
* hand the heap's free pages back to the OS (glibc ``malloc_trim``): the download's buffers and the load's
  temporaries are freed by now but glibc keeps their pages, which the snapshot would carry (what the
  snapshot then holds: docs/cold-starts.md);
* log what the snapshot holds.

After restore (every copy starts from the same memory, so everything random was drawn identically):
* re-seed ``random``, NumPy's global generator and torch's (if loaded); uuid4 and ``secrets`` read the OS;
* refresh Powertools' log-sampling decision (drawn at init) and reset its cold-start flags, so ``ColdStart``
  means the first request in this environment;
* log a "restored" line. Nothing time-based needs resetting: the time budget reads each invocation's remaining
  time and keeps the per-window estimate, which is a measurement of this code on this memory size.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from handler.engine import EncodedRequest, QAEngine
from handler.observability import logger, metrics
from handler.service import QAService
from handler.store.s3 import clients_alive

# Text for the full-length warm-up windows: enough words for the longest window any model here takes.
_WARMUP_QUESTION = "What does the snapshot hold?"
_WARMUP_SENTENCE = "The snapshot holds a model that has already answered a question of full length. "
_WARMUP_REPEAT = 400

_snapshot_wall_time: float | None = None


class SnapshotRefused(RuntimeError):
    """The sandbox must not be snapshotted (awslambdaric reports it as Runtime.BeforeSnapshotError)."""


class RestoreFailed(RuntimeError):
    """An after-restore step failed (awslambdaric reports it as Runtime.AfterRestoreError)."""


def register(service: QAService) -> bool:
    """Registers the hooks when this init is a SnapStart one; returns whether it did."""
    if not service.settings.snapstart:
        return False
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    register_before_snapshot(before_snapshot, service)
    register_after_restore(after_restore, service)
    return True


def before_snapshot(service: QAService) -> None:
    global _snapshot_wall_time
    if service.engine is None:
        raise SnapshotRefused(
            f"not snapshotting: {service.unavailable}, and every environment restored from this snapshot would "
            "answer 503; fix the cause named in the init log and publish the version again"
        )
    window_ms = warm_full_length(service.engine)
    service.budget.ms_per_window = window_ms
    if metrics.metric_set:
        metrics.flush_metrics()  # init's metrics, reported once
    _forget_s3()
    collected = gc.collect()
    rss_before_trim = rss_mib()
    _release_free_heap()
    _snapshot_wall_time = time.time()
    logger.info(
        "snapshot",
        extra={
            **service.info,
            "full_window_ms": round(window_ms, 1),
            "rss_mib": round(rss_mib(), 1),
            "rss_before_trim_mib": round(rss_before_trim, 1),
            "model_dir_bytes": _bytes_under(service.settings.model_dir),
            "s3_clients_alive": clients_alive(),
            "gc_collected": collected,
        },
    )


def after_restore(service: QAService) -> None:
    _step("re-seeding random state", _reseed)
    _step("resetting Powertools' cold-start and sampling state", _reset_powertools)
    age = time.time() - _snapshot_wall_time if _snapshot_wall_time is not None else None
    logger.info(
        "restored",
        extra={
            "model": service.info.get("model"),
            "backend": service.info.get("backend"),
            "store": service.info.get("store"),
            "snapshot_age_s": round(age, 1) if age is not None else None,
            "ms_per_window": round(service.budget.ms_per_window or 0.0, 1),
            "rss_mib": round(rss_mib(), 1),
        },
    )


def warm_full_length(engine: QAEngine) -> float:
    """Two windows of exactly the default ``max_seq_len``; returns the second one's milliseconds."""
    seq, _ = engine.tokenizer.resolve(None, None)
    pairs = [(_WARMUP_QUESTION, _WARMUP_SENTENCE * _WARMUP_REPEAT)]
    encoded = engine.encode(pairs)
    window = encoded.windows[0]
    if len(window.encoding.ids) != seq:
        raise SnapshotRefused(f"the warm-up window has {len(window.encoding.ids)} tokens, not {seq}")
    one = EncodedRequest(pairs, [window], encoded.params)
    engine.predict(one)  # first: allocations, weight packing, kernel selection for this shape
    started = time.perf_counter()
    engine.predict(one)
    return (time.perf_counter() - started) * 1000


def _step(what: str, action: Callable[[], None]) -> None:
    try:
        action()
    except Exception as exc:
        raise RestoreFailed(f"after restore: {what} failed ({type(exc).__name__}: {exc})") from exc


def _reseed() -> None:
    random.seed()  # from os.urandom
    import numpy as np

    np.random.seed()  # the legacy global generator, also seeded from the OS
    if "torch" in sys.modules:
        sys.modules["torch"].seed()


def _reset_powertools() -> None:
    import aws_lambda_powertools.logging.logger as logger_module
    import aws_lambda_powertools.tracing.tracer as tracer_module
    from aws_lambda_powertools.metrics.provider import cold_start

    cold_start.reset_cold_start_flag()  # what Metrics(capture_cold_start_metric=True) reads
    logger_module.is_cold_start = True  # Logger.inject_lambda_context's cold_start key (no reset function)
    tracer_module.is_cold_start = True  # the ColdStart annotation, if a Tracer is ever created
    logger.refresh_sample_rate_calculation()  # a no-op without POWERTOOLS_LOGGER_SAMPLE_RATE


def _release_free_heap() -> None:
    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to trim this way
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _forget_s3() -> None:
    boto3 = sys.modules.get("boto3")
    if boto3 is not None:
        boto3.DEFAULT_SESSION = None


def rss_mib() -> float:
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _bytes_under(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
