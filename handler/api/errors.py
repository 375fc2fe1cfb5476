"""Every error a caller can see, HTTP or direct invoke: its status and type in one table, one body shape.

Layers below raise domain errors (``handler.errors``) without HTTP in mind; the event adapters raise the few
that only exist at the edge (unreadable bodies, unknown routes). ``failure`` turns any exception into the
``Failure`` a caller gets, counts it, and logs a bug by where it happened, never by its message (a message can
quote request text).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from handler.errors import (
    InvalidInput,
    LimitExceeded,
    ModelUnavailable,
    OutOfTime,
    QAError,
    TimeBudgetExceeded,
)
from handler.observability import count_error, log_unhandled

JSON_HEADERS = {"Content-Type": "application/json"}
RETRY_AFTER_S = 60  # a model that failed to load may load in a new environment; not sooner than this


class BadRequest(QAError):
    """The request itself is unreadable: invalid JSON, base64 or UTF-8, or a malformed event."""


class NotFound(QAError):
    """No such route."""


class MethodNotAllowed(QAError):
    """The route exists for other methods (listed in ``allow``)."""

    def __init__(self, message: str, allow: tuple[str, ...]) -> None:
        super().__init__(message)
        self.allow = allow


class UnsupportedMediaType(QAError):
    """A body that is not JSON."""


class InvalidRequest(QAError):
    """The body does not match the contract: types, missing or unknown fields, out-of-range parameters."""


# (status, type) of every error a caller can get; a subclass not listed takes its nearest listed base.
# 503 alone means "may succeed if sent again unchanged": batch results rely on it (resend those items).
STATUS: dict[type[QAError], tuple[int, str]] = {
    BadRequest: (400, "bad_request"),
    NotFound: (404, "not_found"),
    MethodNotAllowed: (405, "method_not_allowed"),
    LimitExceeded: (413, "payload_too_large"),
    TimeBudgetExceeded: (413, "time_budget_exceeded"),
    UnsupportedMediaType: (415, "unsupported_media_type"),
    InvalidRequest: (422, "validation_error"),
    InvalidInput: (422, "invalid_input"),
    ModelUnavailable: (503, "model_unavailable"),
    OutOfTime: (503, "out_of_time"),
}
INTERNAL = (500, "internal_error")


@dataclass(frozen=True)
class Failure:
    """What a caller gets for an error: ``{"error": {"type", "message", "status"}}`` and headers."""

    status: int
    type: str
    message: str
    headers: Mapping[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        return {"error": {"type": self.type, "message": self.message, "status": self.status}}

    def json(self) -> str:
        return json.dumps(self.body())

    def proxy(self) -> dict[str, Any]:
        """As an API Gateway / function URL proxy result."""
        return {
            "statusCode": self.status,
            "headers": {**JSON_HEADERS, **self.headers},
            "body": self.json(),
            "isBase64Encoded": False,
        }


def failure(exc: BaseException) -> Failure:
    if isinstance(exc, ValidationError):  # the contract, validated outside Powertools (direct invokes)
        exc = InvalidRequest(describe_errors(exc.errors()))
    kind = next((STATUS[c] for c in type(exc).__mro__ if c in STATUS), None)
    if kind is None:
        log_unhandled("unhandled error", exc)
        kind, message = INTERNAL, "internal error; see the function's logs"
    else:
        message = str(exc)
    headers: dict[str, str] = {}
    if isinstance(exc, ModelUnavailable):
        headers["Retry-After"] = str(RETRY_AFTER_S)
    if isinstance(exc, MethodNotAllowed):
        headers["Allow"] = ", ".join(exc.allow)
    count_error(kind[1])
    return Failure(kind[0], kind[1], message, headers)


def describe_errors(errors: list[Any], limit: int = 10) -> str:
    """pydantic errors as 'field.path: message' (no input values: they may hold personal data)."""
    parts = []
    for err in errors[:limit]:
        # Drop "body" and pydantic's validator steps (e.g. "function-after[_not_blank(), QAInput]").
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body" and "[" not in str(p))
        message = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{loc}: {message}" if loc else message)
    return "; ".join(parts)
