"""Lambda's payload quota for synchronous invocations, enforced locally where Lambda enforces it.

"For synchronous invocations, the maximum payload size is 6 MB" (https://docs.aws.amazon.com/lambda/latest/dg/
API_Invoke.html), for the request and for the response. The exact figure is the one Lambda's errors quote,
6,291,556 bytes (6 MiB + 100). A larger request is refused by the Invoke API before the function runs (HTTP 413,
``RequestEntityTooLargeException``, AWS's common error for a request entity that is too large); a larger
response is refused by the Runtime API when the runtime posts it, and the caller gets a function error of type
``Function.ResponseSizeTooLarge`` (behind API Gateway: its 502).
"""

from __future__ import annotations

import json

SYNC_PAYLOAD_LIMIT = 6_291_556  # bytes, request and response each
REQUEST_ERROR_TYPE = "RequestEntityTooLargeException"  # the Invoke API's x-amzn-ErrorType, with HTTP 413
REQUEST_STATUS = 413
RESPONSE_ERROR_TYPE = "Function.ResponseSizeTooLarge"  # the invocation's function error
RUNTIME_ERROR_TYPE = "RequestEntityTooLarge"  # what the Runtime API answers the runtime's oversized post


def request_too_large(size: int) -> str | None:
    """The Invoke API's message for a request payload of ``size`` bytes, or None if Lambda accepts it."""
    if size <= SYNC_PAYLOAD_LIMIT:
        return None
    return f"Request must be smaller than {SYNC_PAYLOAD_LIMIT} bytes for the Invoke operation"


def request_error_body(message: str) -> dict[str, str]:
    """The Invoke API's JSON error body (the error type travels in the x-amzn-ErrorType header)."""
    return {"Type": "User", "message": message}


def response_too_large(size: int) -> bytes | None:
    """The function error an invocation returns when its response has ``size`` bytes, or None if it fits."""
    if size <= SYNC_PAYLOAD_LIMIT:
        return None
    message = f"Response payload size ({size} bytes) exceeded maximum allowed payload size ({SYNC_PAYLOAD_LIMIT} bytes)."
    return json.dumps({"errorMessage": message, "errorType": RESPONSE_ERROR_TYPE}).encode()


def runtime_refusal() -> dict[str, str]:
    """The Runtime API's answer (HTTP 413) to a runtime posting an oversized response."""
    return {
        "errorMessage": f"Exceeded maximum allowed payload size ({SYNC_PAYLOAD_LIMIT} bytes).",
        "errorType": RUNTIME_ERROR_TYPE,
    }
