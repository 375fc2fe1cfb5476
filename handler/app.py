"""Lambda entry point (image CMD ``handler.app.lambda_handler``): init once, then route each event.

Import time is Lambda's init phase: settings are read and the model is warmed here, once per sandbox.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from handler.api import handle_http
from handler.direct import handle_direct
from handler.events import Shape, detect_shape
from handler.loader import load_model
from handler.observability import logger, metrics
from handler.service import Predictor
from handler.settings import Settings

SETTINGS = Settings.from_env()  # a configuration error fails init loudly: no retry can fix it
STATE = load_model(SETTINGS)
PREDICTOR = Predictor(STATE.engine, SETTINGS, STATE.warmup_ms) if STATE.engine is not None else None


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: Any, context: LambdaContext) -> Any:
    shape = detect_shape(event)
    logger.append_keys(event_shape=shape.value)
    metrics.add_metric(name="Requests", unit=MetricUnit.Count, value=1)
    if shape is Shape.DIRECT:
        return handle_direct(event, context, STATE, PREDICTOR)
    return handle_http(shape, event, context, STATE, PREDICTOR, SETTINGS.max_body_bytes)
