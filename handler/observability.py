"""Powertools Logger, Metrics and Tracer, configured from the POWERTOOLS_* environment variables.

Defaults only fill in what the environment leaves unset, so SAM / the console stay the source of truth.

The Tracer is created on the first invocation that is traced, not at import: creating one imports the X-Ray
SDK (a measurable share of init: docs/configuration.md) even when nothing will be traced. Lambda says per invocation whether it traces: the
``Lambda-Runtime-Trace-Id`` header, which the runtime copies to ``_X_AMZN_TRACE_ID``, carries ``Sampled=1``
(Active tracing samples; PassThrough follows a sampled caller). The X-Ray SDK records nothing for any other
header (``aws_xray_sdk/core/lambda_launcher.py``: a facade segment only with Root, Parent and ``Sampled=1``,
else a dummy segment), so skipping the SDK for those invocations loses no trace. Powertools' own switch-offs
(POWERTOOLS_TRACE_DISABLED, outside Lambda, SAM local) still apply: ``Tracer._is_tracer_disabled``.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "extractive-qa")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ExtractiveQA")

TRACE_HEADER_ENV = "_X_AMZN_TRACE_ID"

logger = Logger()
metrics = Metrics()
_tracer: Tracer | None = None


class _Untraced:
    """Stands in for a subsegment when the invocation is not traced."""

    def put_annotation(self, key: str, value: Any) -> None:
        pass

    def put_metadata(self, key: str, value: Any, namespace: str | None = None) -> None:
        pass


def invocation_sampled(header: str | None = None) -> bool:
    """Whether Lambda traces this invocation: ``Sampled=1`` in its trace header."""
    header = os.environ.get(TRACE_HEADER_ENV, "") if header is None else header
    return "Sampled=1" in (part.strip() for part in header.split(";"))


def active_tracer() -> Tracer | None:
    """Powertools' Tracer once an invocation has been traced (created then); None before that."""
    global _tracer
    if _tracer is None and invocation_sampled() and not Tracer._is_tracer_disabled():
        _tracer = Tracer()
    return _tracer


@contextmanager
def subsegment(name: str) -> Iterator[Any]:
    """An X-Ray subsegment when this invocation is traced; otherwise a no-op, with no X-Ray SDK imported."""
    tracer = active_tracer()
    if tracer is None:
        yield _Untraced()
        return
    with tracer.provider.in_subsegment(name) as segment:
        yield segment


def count_error(kind: str) -> None:
    """One EMF metric per error, dimensioned by type, so dashboards can split 4xx causes from 5xx."""
    with single_metric(name="Errors", unit=MetricUnit.Count, value=1, namespace=metrics.namespace) as metric:
        metric.add_dimension(name="service", value=metrics.service or "extractive-qa")
        metric.add_dimension(name="ErrorType", value=kind)


def log_unhandled(message: str, exc: BaseException) -> None:
    """Logs an unexpected exception by its type and stack frames, never by its message.

    A message can quote request text (a library echoing its input, a KeyError on a word), and request text
    must not reach the logs; the frames still say where it failed.
    """
    frames = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(exc.__traceback__)]
    logger.error(message, extra={"error_type": type(exc).__name__, "frames": frames})
