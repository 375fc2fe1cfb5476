"""HTTP API on Powertools' event handler: routes, validation, and every error as JSON with one status.

One Router holds the routes; each payload shape (REST v1, HTTP API v2, function URL) gets its own resolver
including it, so all shapes run the same code. Nothing a caller does may escape as an exception (API
Gateway would turn it into a 502 with no body), and no message carries a stack trace or a path.
"""

from __future__ import annotations

import base64
import json
from http import HTTPStatus
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import (
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    LambdaFunctionUrlResolver,
    Response,
    content_types,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent, APIGatewayProxyEventV2

from handler.errors import (
    BadRequest,
    ModelUnavailable,
    PayloadTooLarge,
    QAError,
    UnsupportedMediaType,
    error_body,
)
from handler.events import Shape
from handler.loader import ModelState
from handler.observability import count_error, log_unhandled
from handler.schemas import AnswerModel, ErrorResponse, PredictRequest, describe_errors
from handler.service import Predictor

ROUTES = {"/predict": ("POST",), "/health": ("GET",), "/openapi.json": ("GET",)}
JSON_HEADERS = {"Content-Type": content_types.APPLICATION_JSON}

PREDICT_RESPONSES: dict[int | str, Any] = {
    200: {"description": "The answer(s)", "content": {"application/json": {"model": AnswerModel}}},
    **{
        status: {"description": text, "content": {"application/json": {"model": ErrorResponse}}}
        for status, text in {
            400: "Unreadable body (JSON, base64 or UTF-8)",
            413: "Over a documented limit",
            415: "Body is not application/json",
            422: "Invalid request; the message names the field",
            503: "Model not loaded",
        }.items()
    },
}


def _register_routes(app: ApiGatewayResolver) -> None:
    """The same route functions on every resolver, reading the per-request state from that resolver."""

    @app.post(
        "/predict", summary="Answer one question, or a batch, from its context", responses=PREDICT_RESPONSES
    )
    def predict(body: Annotated[PredictRequest, Body()]) -> Any:
        state, predictor = app.context["state"], app.context["predictor"]
        if predictor is None:
            raise ModelUnavailable(state.error or "the model is not loaded")
        return predictor(body, app.lambda_context.get_remaining_time_in_millis())

    @app.get("/health", summary="Is the model loaded; which model, backend and versions")
    def health() -> Response[str]:
        state: ModelState = app.context["state"]
        if state.engine is None:
            body = {"status": "unavailable", "error": state.error}
            return Response(HTTPStatus.SERVICE_UNAVAILABLE, content_types.APPLICATION_JSON, json.dumps(body))
        body = {"status": "ok", **state.info}
        return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, json.dumps(body))

    @app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, OPENAPI_JSON)


def _error(status: int, kind: str, message: str, headers: dict[str, str] | None = None) -> Response:
    count_error(kind)
    return Response(
        status, content_types.APPLICATION_JSON, json.dumps(error_body(status, kind, message)), headers
    )


def _on_validation(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        return _error(400, "bad_request", "the request body is not valid JSON")
    return _error(422, "validation_error", describe_errors(errors))


def _on_qa_error(exc: QAError) -> Response:
    headers = {"Retry-After": "60"} if isinstance(exc, ModelUnavailable) else None
    return _error(exc.status, exc.kind, str(exc), headers)


def _register_errors(app: ApiGatewayResolver) -> None:
    app.exception_handler(RequestValidationError)(_on_validation)
    app.exception_handler(QAError)(_on_qa_error)
    app.exception_handler(RequestUnsupportedContentType)(
        lambda _: _error(415, "unsupported_media_type", "send the body as application/json")
    )

    @app.not_found
    def _not_found(_: NotFoundError) -> Response:
        path = app.current_event.path
        allowed = ROUTES.get(path)
        if allowed:
            return _error(
                405,
                "method_not_allowed",
                f"{path} accepts {', '.join(allowed)}",
                {"Allow": ", ".join(allowed)},
            )
        return _error(404, "not_found", f"no route {path}; try POST /predict or GET /health")

    @app.exception_handler(Exception)
    def _internal(exc: Exception) -> Response:
        log_unhandled("unhandled error", exc)
        return _error(500, "internal_error", "internal error; see the function's logs")


def _load_json(text: str) -> Any:
    """``json.loads`` whose every failure is a JSONDecodeError, which Powertools answers as invalid JSON (400).

    Nesting deeper than the interpreter's recursion limit raises RecursionError, and an integer longer than
    Python's 4300-digit limit raises ValueError: both are unreadable bodies, not server faults (500).
    """
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise
    except (RecursionError, ValueError) as exc:
        raise json.JSONDecodeError(f"unreadable JSON ({type(exc).__name__})", text, 0) from None


def _resolver(cls: type[ApiGatewayResolver]) -> ApiGatewayResolver:
    app = cls(enable_validation=True, json_body_deserializer=_load_json)
    _register_routes(app)
    _register_errors(app)
    return app


RESOLVERS: dict[Shape, ApiGatewayResolver] = {
    Shape.REST_V1: _resolver(APIGatewayRestResolver),
    Shape.HTTP_V2: _resolver(APIGatewayHttpResolver),
    Shape.FUNCTION_URL: _resolver(LambdaFunctionUrlResolver),
}
OPENAPI_JSON = RESOLVERS[Shape.REST_V1].get_openapi_json_schema(
    title="Extractive question answering", version="1.0.0"
)


def _proxy_error(status: int, kind: str, message: str) -> dict[str, Any]:
    count_error(kind)
    body = json.dumps(error_body(status, kind, message))
    return {"statusCode": status, "headers": JSON_HEADERS, "body": body, "isBase64Encoded": False}


def precheck(shape: Shape, event: dict[str, Any], max_body_bytes: int) -> None:
    """What must be refused before Powertools parses the body: odd events, size, content type, encoding."""
    headers = event.get("headers")
    if not isinstance(event.get("body"), str | None) or not isinstance(headers, dict | None):
        raise BadRequest("malformed event: 'body' must be a string and 'headers' an object")
    req = APIGatewayProxyEvent(event) if shape is Shape.REST_V1 else APIGatewayProxyEventV2(event)
    body = req.body or ""
    size = len(body) * 3 // 4 if req.is_base64_encoded else len(body.encode("utf-8", "surrogatepass"))
    if size > max_body_bytes:
        raise PayloadTooLarge(f"the body has {size} bytes; the limit is {max_body_bytes}")
    ctype = str(req.headers.get("content-type") or "")
    if body and ctype and not ctype.split(";")[0].strip().lower().endswith(("/json", "+json")):
        raise UnsupportedMediaType(
            f"content type {ctype.split(';')[0]!r} is not supported; use application/json"
        )
    try:
        raw = base64.b64decode(body, validate=True) if req.is_base64_encoded else body.encode("utf-8")
        raw.decode("utf-8")
    except ValueError:  # binascii.Error, UnicodeError, and b64decode's "only ASCII characters" ValueError
        raise BadRequest("the body is not valid UTF-8 (or not valid base64 with isBase64Encoded)") from None


def handle_http(
    shape: Shape,
    event: dict[str, Any],
    context: Any,
    state: ModelState,
    predictor: Predictor | None,
    max_body: int,
) -> dict[str, Any]:
    try:
        precheck(shape, event, max_body)
        app = RESOLVERS[shape]
        app.append_context(state=state, predictor=predictor)
        return app.resolve(event, context)
    except QAError as exc:
        return _proxy_error(exc.status, exc.kind, str(exc))
    except Exception as exc:  # an event API Gateway would never send; still never a 502
        log_unhandled("unhandled error", exc)
        return _proxy_error(500, "internal_error", "internal error; see the function's logs")
