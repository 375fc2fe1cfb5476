"""HTTP shapes on Powertools' event handler: API Gateway REST (v1), HTTP API (v2) and function URLs.

Each shape has its own resolver (Powertools parses each differently), and ``_register`` puts the same routes and
error handlers on all three, so every shape runs the same code. Nothing a caller does may escape as an exception
(API Gateway would answer 502 with no body): every error becomes a ``Failure`` (``handler.api.errors``).
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

from handler.api.errors import (
    STATUS,
    BadRequest,
    Failure,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    UnsupportedMediaType,
    describe_errors,
    failure,
)
from handler.api.events import Shape
from handler.contract import AnswerModel, ErrorResponse, PredictRequest
from handler.errors import LimitExceeded
from handler.service import QAService

ROUTES = {"/predict": ("POST",), "/health": ("GET",), "/openapi.json": ("GET",)}
_ERROR_STATUSES = sorted({status for status, _ in STATUS.values()} - {404, 405})
PREDICT_RESPONSES: dict[int | str, Any] = {
    200: {"description": "The answer(s)", "content": {"application/json": {"model": AnswerModel}}},
    **{
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {"application/json": {"model": ErrorResponse}},
        }
        for status in _ERROR_STATUSES
    },
}


def _response(fail: Failure) -> Response[str]:
    return Response(fail.status, content_types.APPLICATION_JSON, fail.json(), dict(fail.headers))


def _register(app: ApiGatewayResolver) -> None:
    """The same routes and error handlers on every resolver; the service comes with each request's context."""

    @app.post(
        "/predict", summary="Answer one question, or a batch, from its context", responses=PREDICT_RESPONSES
    )
    def predict(body: Annotated[PredictRequest, Body()]) -> Any:
        service: QAService = app.context["service"]
        return service.predict(body, app.lambda_context.get_remaining_time_in_millis())

    @app.get("/health", summary="Is the model loaded; which model, backend and versions")
    def health() -> Response[str]:
        body = app.context["service"].health()
        ok = body["status"] == "ok"
        return Response(
            HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE,
            content_types.APPLICATION_JSON,
            json.dumps(body),
        )

    @app.get("/openapi.json", summary="This API's OpenAPI document", include_in_schema=False)
    def openapi() -> Response[str]:
        return Response(HTTPStatus.OK, content_types.APPLICATION_JSON, OPENAPI_JSON)

    @app.exception_handler(RequestValidationError)
    def _invalid(exc: RequestValidationError) -> Response[str]:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            return _response(failure(BadRequest("the request body is not valid JSON")))
        return _response(failure(InvalidRequest(describe_errors(errors))))

    @app.exception_handler(RequestUnsupportedContentType)
    def _media_type(_: RequestUnsupportedContentType) -> Response[str]:  # a safety net behind `precheck`
        return _response(failure(UnsupportedMediaType("send the body as application/json")))

    @app.not_found
    def _not_found(_: NotFoundError) -> Response[str]:
        path = app.current_event.path
        allowed = ROUTES.get(path)
        if allowed:
            return _response(failure(MethodNotAllowed(f"{path} accepts {', '.join(allowed)}", allowed)))
        return _response(failure(NotFound(f"no route {path}; try POST /predict or GET /health")))

    @app.exception_handler(Exception)
    def _any(exc: Exception) -> Response[str]:
        return _response(failure(exc))


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
    _register(app)
    return app


RESOLVERS: dict[Shape, ApiGatewayResolver] = {
    Shape.REST_V1: _resolver(APIGatewayRestResolver),
    Shape.HTTP_V2: _resolver(APIGatewayHttpResolver),
    Shape.FUNCTION_URL: _resolver(LambdaFunctionUrlResolver),
}
OPENAPI_JSON = RESOLVERS[Shape.REST_V1].get_openapi_json_schema(
    title="Extractive question answering", version="1.0.0"
)


def precheck(shape: Shape, event: dict[str, Any], max_body_bytes: int) -> None:
    """What must be refused before Powertools parses the body: odd events, size, content type, encoding."""
    headers = event.get("headers")
    if not isinstance(event.get("body"), str | None) or not isinstance(headers, dict | None):
        raise BadRequest("malformed event: 'body' must be a string and 'headers' an object")
    req = APIGatewayProxyEvent(event) if shape is Shape.REST_V1 else APIGatewayProxyEventV2(event)
    body = req.body or ""
    size = len(body) * 3 // 4 if req.is_base64_encoded else len(body.encode("utf-8", "surrogatepass"))
    if size > max_body_bytes:
        raise LimitExceeded(f"the body has {size} bytes; the limit is {max_body_bytes}")
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


def handle_http(shape: Shape, event: dict[str, Any], context: Any, service: QAService) -> dict[str, Any]:
    try:
        precheck(shape, event, service.settings.max_body_bytes)
        app = RESOLVERS[shape]
        app.append_context(service=service)
        return app.resolve(event, context)
    except Exception as exc:  # a precheck refusal, or an event API Gateway would never send: never a 502
        return failure(exc).proxy()
