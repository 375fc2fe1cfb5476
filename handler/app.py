"""Lambda entry point (image CMD ``handler.app.lambda_handler``): init once, then route each event by shape.

Import time is Lambda's init phase: settings are read and the model is warmed here, once per sandbox.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handler.api.batch import handle_batch
from handler.api.direct import handle_direct
from handler.api.events import Shape, detect_shape
from handler.api.http import handle_http
from handler.observability import logger, metrics
from handler.runtime.loader import load_service
from handler.settings import Settings

SETTINGS = Settings.from_env()  # a configuration error fails init loudly: no retry can fix it
SERVICE = load_service(SETTINGS)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: Any, context: LambdaContext) -> Any:
    shape = detect_shape(event)
    logger.append_keys(event_shape=shape.value)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    if shape is Shape.DIRECT:
        return handle_direct(event, context, SERVICE)
    if shape is Shape.BATCH:
        return handle_batch(event, context, SERVICE)
    return handle_http(shape, event, context, SERVICE)
