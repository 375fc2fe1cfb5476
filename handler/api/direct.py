"""Direct invokes (`aws lambda invoke`, Step Functions, SDKs): the event is the request.

Bad input returns ``{"error": {"type", "message", "status"}}`` as the result instead of raising: a raised
exception would reach the caller as a FunctionError with a stack trace, and those must not leave the function.
"""

from __future__ import annotations

from typing import Any

from handler.api.errors import BadRequest, failure
from handler.contract import PredictRequest
from handler.service import QAService


def handle_direct(event: Any, context: Any, service: QAService) -> Any:
    try:
        if not isinstance(event, dict):
            raise BadRequest("the payload must be a JSON object")
        request = PredictRequest.model_validate(event)
        remaining = context.get_remaining_time_in_millis() if context is not None else None
        return service.predict(request, remaining)
    except Exception as exc:
        return failure(exc).body()
