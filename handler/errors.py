"""Typed errors: every failure a caller or the environment can cause, mapped to one HTTP status here."""

from __future__ import annotations


class QAError(Exception):
    """Base class; ``status`` and ``kind`` are what an HTTP caller sees."""

    status: int = 500
    kind: str = "internal_error"


class InvalidInput(QAError):
    """The request is well-formed JSON but asks for something the engine cannot do."""

    status = 422
    kind = "invalid_input"


class PayloadTooLarge(QAError):
    """The request exceeds a documented limit (body, context, batch or windows)."""

    status = 413
    kind = "payload_too_large"


class ModelUnavailable(QAError):
    """The model could not be loaded at init, so no request can be answered."""

    status = 503
    kind = "model_unavailable"


class ModelStoreError(QAError):
    """Warming the model from S3 into local storage failed; raised at init with a clear message."""

    status = 503
    kind = "model_store_error"


class TimeBudgetExceeded(PayloadTooLarge):
    """The request would not finish before the function times out: refuse it early with a clear message."""

    kind = "time_budget_exceeded"


class BadRequest(QAError):
    """The HTTP request itself is unreadable: invalid JSON, base64 or UTF-8."""

    status = 400
    kind = "bad_request"


class UnsupportedMediaType(QAError):
    status = 415
    kind = "unsupported_media_type"


def error_body(status: int, kind: str, message: str) -> dict[str, object]:
    """The one error shape every caller sees, HTTP or direct invoke."""
    return {"error": {"type": kind, "message": message, "status": status}}


class ConfigurationError(ValueError):
    """The function's environment is wrong (a deploy mistake): fails init, reported via /init/error."""
