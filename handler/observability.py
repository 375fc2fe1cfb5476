"""Powertools Logger, Metrics and Tracer, configured from the POWERTOOLS_* environment variables.

Defaults only fill in what the environment leaves unset, so SAM / the console stay the source of truth.
"""

from __future__ import annotations

import os

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
