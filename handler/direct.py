"""Direct invokes (`aws lambda invoke`, Step Functions, SDKs): the event is the request.

Bad input returns ``{"error": {"type", "message", "status"}}`` instead of raising: a raised exception would
reach the caller as FunctionError with a stack trace, and those must not leave the function.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from handler.errors import BadRequest, ModelUnavailable, QAError, error_body
from handler.loader import ModelState
from handler.observability import count_error, log_unhandled
from handler.schemas import PredictRequest, describe_errors
from handler.service import Predictor


def _fail(status: int, kind: str, message: str) -> dict[str, Any]:
    count_error(kind)
    return error_body(status, kind, message)


def handle_direct(event: Any, context: Any, state: ModelState, predictor: Predictor | None) -> Any:
    try:
        if not isinstance(event, dict):
            raise BadRequest("the payload must be a JSON object")
        request = PredictRequest.model_validate(event)
        if predictor is None:
            raise ModelUnavailable(state.error or "the model is not loaded")
        remaining = context.get_remaining_time_in_millis() if context is not None else None
        return predictor(request, remaining)
    except ValidationError as exc:
        return _fail(422, "validation_error", describe_errors(exc.errors()))
    except QAError as exc:
        return _fail(exc.status, exc.kind, str(exc))
    except Exception as exc:
        log_unhandled("unhandled error", exc)
        return _fail(500, "internal_error", "internal error; see the function's logs")
