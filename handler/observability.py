"""Powertools Logger, Metrics and Tracer, configured from the POWERTOOLS_* environment variables.

Defaults only fill in what the environment leaves unset, so SAM / the console stay the source of truth.
"""

from __future__ import annotations

import os
import traceback

from aws_lambda_powertools import Logger, Metrics, Tracer, single_metric
from aws_lambda_powertools.metrics import MetricUnit

os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "extractive-qa")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "ExtractiveQA")

logger = Logger()
metrics = Metrics()
tracer = Tracer()


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
