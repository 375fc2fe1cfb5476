"""HTTP front doors to a ``LocalFunction`` on 127.0.0.1.

* ``InvokeEndpoint``: ``POST /2015-03-31/functions/function/invocations``, what the Lambda base image's Runtime
  Interface Emulator serves (``docker run -p 9000:8080 IMAGE``), answered like the Invoke API: the payload with
  200, and a function error also with ``X-Amz-Function-Error: Unhandled``; a request over Lambda's synchronous
  payload limit is its 413 (``limits``).
* ``RestApi``: the template's REST API (its routes, e.g. ``POST /predict`` and ``GET /health``), each request
  wrapped into an API Gateway REST proxy event and the proxy result unwrapped, as API Gateway does; a method or
  path the API does not define never reaches the function: API Gateway answers it with its
  MISSING_AUTHENTICATION_TOKEN gateway response, 403 ``{"message": "Missing Authentication Token"}`` ("including
  the cases when the client attempts to invoke an unsupported API method or resource",
  https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html), and so
  does this; a failed invocation is its 502. Authentication (SigV4, API keys) is not checked locally.

Only loopback is ever bound: these servers have no authentication.
"""

from __future__ import annotations

import base64
import contextlib
import json
import sys
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from qa_tools.local import limits
from qa_tools.local.config import ApiSpec
from qa_tools.local.runtime_api import LOOPBACK
from qa_tools.local.sandbox import LocalFunction, Result

INVOKE_PATH = "/2015-03-31/functions/{name}/invocations"
JSON = "application/json"
# API Gateway's default answer to a method or resource the REST API does not define (see the module's docstring).
UNDEFINED_ROUTE_STATUS = 403
UNDEFINED_ROUTE_BODY = {"message": "Missing Authentication Token"}
UNDEFINED_ROUTE_ERROR_TYPE = ("x-amzn-ErrorType", "MissingAuthenticationTokenException")


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client_ip: str = LOOPBACK


@dataclass(frozen=True)
class HttpReply:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, body: Any, *headers: tuple[str, str]) -> HttpReply:
        return cls(status, json.dumps(body).encode(), [("Content-Type", JSON), *headers])


class FrontDoor(Protocol):
    def handle(self, request: HttpRequest) -> HttpReply: ...


class InvokeEndpoint:
    """The emulator's invoke URL, for the default name ``function`` and for the function's own name."""

    def __init__(self, function: LocalFunction) -> None:
        self.function = function
        self.paths = {INVOKE_PATH.format(name="function"), INVOKE_PATH.format(name=function.config.name)}

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.path not in self.paths:
            return HttpReply.json(
                404, {"message": f"no route {request.path}; POST {INVOKE_PATH.format(name='function')}"}
            )
        if request.method != "POST":
            return HttpReply.json(405, {"message": "invoke with POST"}, ("Allow", "POST"))
        too_large = limits.request_too_large(len(request.body))
        if too_large:  # refused before the function runs, as the Invoke API does
            body = limits.request_error_body(too_large)
            return HttpReply.json(
                limits.REQUEST_STATUS, body, ("x-amzn-ErrorType", limits.REQUEST_ERROR_TYPE)
            )
        result = self.function.invoke(request.body)
        log_result(result, self.function.config.memory_mb)
        headers = [("Content-Type", JSON), ("X-Amz-Request-Id", result.request_id)]
        if not result.ok:
            headers.append(("X-Amz-Function-Error", "Unhandled"))
        return HttpReply(200, result.body, headers)


class RestApi:
    """API Gateway REST API (Lambda proxy integration) in front of the function, routes from the template."""

    def __init__(self, function: LocalFunction, api: ApiSpec) -> None:
        self.function = function
        self.api = api

    def handle(self, request: HttpRequest) -> HttpReply:
        if request.method not in self.api.routes.get(request.path, ()):
            return HttpReply.json(UNDEFINED_ROUTE_STATUS, UNDEFINED_ROUTE_BODY, UNDEFINED_ROUTE_ERROR_TYPE)
        event = proxy_event(request, self.api.stage)
        result = self.function.invoke(json.dumps(event).encode())
        log_result(result, self.function.config.memory_mb)
        reply = proxy_reply(result) if result.ok else None
        return reply or HttpReply.json(502, {"message": "Internal server error"})


def proxy_event(request: HttpRequest, stage: str) -> dict[str, Any]:
    """The REST API (payload v1) proxy event API Gateway sends for ``request``."""
    headers: dict[str, str] = {}
    multi_headers: dict[str, list[str]] = {}
    for name, value in request.headers:
        headers[name] = value
        multi_headers.setdefault(name, []).append(value)
    query = parse_qsl(request.query, keep_blank_values=True)
    multi_query: dict[str, list[str]] = {}
    for name, value in query:
        multi_query.setdefault(name, []).append(value)
    try:
        body, encoded = request.body.decode("utf-8"), False
    except UnicodeDecodeError:
        body, encoded = base64.b64encode(request.body).decode("ascii"), True
    now = datetime.now(UTC)
    return {
        "resource": request.path,
        "path": request.path,
        "httpMethod": request.method,
        "headers": headers or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": dict(query) or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": request.path,
            "httpMethod": request.method,
            "path": f"/{stage}{request.path}",
            "stage": stage,
            "requestId": str(uuid.uuid4()),
            "extendedRequestId": uuid.uuid4().hex[:16],
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "accountId": "123456789012",
            "apiId": "local",
            "resourceId": "local",
            "protocol": "HTTP/1.1",
            "domainName": headers.get("Host", LOOPBACK),
            "domainPrefix": "local",
            "identity": {"sourceIp": request.client_ip, "userAgent": headers.get("User-Agent")},
        },
        "body": body if request.body else None,
        "isBase64Encoded": encoded,
    }


def proxy_reply(result: Result) -> HttpReply | None:
    """A proxy result as the HTTP response API Gateway makes of it; None if it is malformed (a 502 there)."""
    try:
        out = result.json()
        status = out["statusCode"]
        body = out.get("body") or ""
        raw = base64.b64decode(body) if out.get("isBase64Encoded") else body.encode("utf-8")
        headers = [(str(k), str(v)) for k, v in (out.get("headers") or {}).items()]
        for name, values in (out.get("multiValueHeaders") or {}).items():
            headers += [(str(name), str(v)) for v in values if (str(name), str(v)) not in headers]
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if not isinstance(status, int) or not 100 <= status <= 599:
        return None
    return HttpReply(status, raw, headers)


def log_result(result: Result, memory_mb: int) -> None:
    """Lambda's REPORT line, and the error a caller of the API would never see, on stderr."""
    if not result.ok:
        print(f"function error ({result.kind}): {result.body.decode('utf-8', 'replace')}", file=sys.stderr)
    print(result.report(memory_mb), file=sys.stderr, flush=True)


def make_server(front: FrontDoor, port: int) -> ThreadingHTTPServer:
    """An HTTP server on 127.0.0.1:``port`` (0: any free port) passing every request to ``front``."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            print(f"{self.command} {self.path} -> {args[1] if len(args) > 1 else ''}", file=sys.stderr)

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError):  # a peer that went away (a killed runtime, a client)
                super().handle()

        def _serve(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = HttpRequest(
                self.command, url.path, url.query, list(self.headers.items()), body, self.client_address[0]
            )
            reply = front.handle(request)
            self.send_response(reply.status)
            for name, value in reply.headers:
                if name.lower() not in ("content-length", "connection", "transfer-encoding"):
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        setattr(Handler, f"do_{method}", Handler._serve)
    server = ThreadingHTTPServer((LOOPBACK, port), Handler)
    server.daemon_threads = True
    return server
