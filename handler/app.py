"""Lambda entry point (image CMD ``handler.app.lambda_handler``): init once, then route each event by shape.

Import time is Lambda's init phase: settings are read and the model is warmed here, once per sandbox. The
model download starts before the event layers are imported, so the two overlap (``ModelLoading``).
"""

from __future__ import annotations

from handler.runtime.loader import ModelLoading
from handler.settings import Settings

SETTINGS = Settings.from_env()  # a configuration error fails init loudly: no retry can fix it
_LOADING = ModelLoading(SETTINGS)  # the download runs from here on, while the imports below proceed

from typing import Any  # noqa: E402 - imported after the download started, on purpose

from aws_lambda_powertools.logging import correlation_paths  # noqa: E402
from aws_lambda_powertools.metrics import MetricUnit  # noqa: E402
from aws_lambda_powertools.utilities.typing import LambdaContext  # noqa: E402

from handler.api.batch import handle_batch  # noqa: E402
from handler.api.direct import handle_direct  # noqa: E402
from handler.api.events import Shape, detect_shape  # noqa: E402
from handler.api.http import handle_http  # noqa: E402
from handler.api.self_check import handle_self_check  # noqa: E402
from handler.observability import logger, metrics  # noqa: E402
from handler.runtime import snapstart  # noqa: E402

SERVICE = _LOADING.service()
snapstart.register(SERVICE)  # under SnapStart only: warm-up before the snapshot, re-seeding after restore


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
    if shape is Shape.SELF_CHECK:
        return handle_self_check(event, context, SERVICE)
    return handle_http(shape, event, context, SERVICE)
