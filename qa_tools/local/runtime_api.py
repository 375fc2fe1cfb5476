"""The Lambda Runtime API on 127.0.0.1: what a sandbox's runtime client (awslambdaric) polls for work.

The on-demand endpoints of https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html, as the base image's
emulator serves them: ``GET /runtime/invocation/next`` (blocks until there is work), ``POST
/runtime/invocation/{id}/response`` and ``.../error``, ``POST /runtime/init/error``; and SnapStart's two, which
Lambda offers only to SnapStart inits: ``GET /runtime/restore/next`` (the runtime calls it when init and the
before-snapshot hooks are done; it returns once a copy is resumed: here, when ``restore()`` is called) and
``POST /runtime/restore/error``. One ``RuntimeAPI`` serves one sandbox (one runtime process), which takes
invocations one at a time, in order.

To add an endpoint: add a row to ``ENDPOINTS`` and a method of the same name taking the ``Request`` (and the
path's named groups) and returning a ``Reply``. Nothing else routes.
"""

from __future__ import annotations

import contextlib
import json
import queue
import re
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from qa_tools.local import limits

LOOPBACK = "127.0.0.1"
PREFIX = "/2018-06-01/runtime"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
# A trace header as Lambda sends it; the runtime client copies it to _X_AMZN_TRACE_ID. Not sampled: no daemon here.
TRACE_ID = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=0"

# (HTTP method, path pattern, RuntimeAPI method): the whole API surface.
ENDPOINTS: tuple[tuple[str, re.Pattern[str], str], ...] = (
    ("GET", re.compile(rf"{PREFIX}/invocation/next"), "next_invocation"),
    ("POST", re.compile(rf"{PREFIX}/invocation/(?P<request_id>[^/]+)/response"), "invocation_response"),
    ("POST", re.compile(rf"{PREFIX}/invocation/(?P<request_id>[^/]+)/error"), "invocation_error"),
    ("POST", re.compile(rf"{PREFIX}/init/error"), "init_error"),
    ("GET", re.compile(rf"{PREFIX}/restore/next"), "restore_next"),
    ("POST", re.compile(rf"{PREFIX}/restore/error"), "restore_error"),
)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: Mapping[str, str]  # case-insensitive (the server's http.client.HTTPMessage)
    body: bytes


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, body: Any) -> Reply:
        return cls(status, json.dumps(body).encode(), {"Content-Type": "application/json"})


ACCEPTED = Reply.json(202, {"status": "OK"})


@dataclass(frozen=True)
class Outcome:
    """What the runtime posted: a function's response or error, or the init error."""

    kind: str  # "response" | "error" | "init_error" | "restore_error"
    body: bytes
    error_type: str | None = None  # the Lambda-Runtime-Function-Error-Type header of errors

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Invocation:
    """One event for the runtime; its deadline starts when the runtime takes it, as on Lambda."""

    payload: bytes
    timeout_s: float
    client_context: str | None = None
    request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    taken_at: float | None = None  # time.monotonic() when handed to the runtime
    deadline_ms: int | None = None  # epoch milliseconds, what get_remaining_time_in_millis() counts down to
    outcome: Outcome | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def take(self) -> None:
        self.taken_at = time.monotonic()
        self.deadline_ms = int((time.time() + self.timeout_s) * 1000)

    def expired(self) -> bool:
        return self.taken_at is not None and time.monotonic() - self.taken_at > self.timeout_s

    def finish(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self.done.set()


class RuntimeAPI:
    """The Runtime API of one sandbox on a free loopback port; ``address`` goes into AWS_LAMBDA_RUNTIME_API."""

    def __init__(self, function_arn: str) -> None:
        self.function_arn = function_arn
        self.started_at = time.monotonic()
        self.ready_at: float | None = None  # the runtime's first poll: init is over
        self.ready = threading.Event()
        self.init_failure: Outcome | None = None
        self.init_failed = threading.Event()
        self.snapshot_requested = threading.Event()  # SnapStart: the runtime waits in /restore/next ...
        self._restored = threading.Event()  # ... until this is set (a copy of the snapshot resumed)
        self.restore_failure: Outcome | None = None
        self.restore_failed = threading.Event()
        self._work: queue.Queue[Invocation | None] = queue.Queue()
        self._invocations: dict[str, Invocation] = {}
        self._server = ThreadingHTTPServer((LOOPBACK, 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="runtime-api", daemon=True).start()

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def init_ms(self) -> float | None:
        return None if self.ready_at is None else (self.ready_at - self.started_at) * 1000

    def submit(self, invocation: Invocation) -> None:
        self._invocations[invocation.request_id] = invocation
        self._work.put(invocation)

    def restore(self) -> None:
        """Resume the runtime waiting in /restore/next, as Lambda does when it restores the snapshot."""
        self._restored.set()

    def close(self) -> None:
        self._restored.set()  # releases a runtime blocked in /restore/next ...
        self._work.put(None)  # ... or in /next
        self._server.shutdown()
        self._server.server_close()

    def dispatch(self, request: Request) -> Reply:
        for method, pattern, name in ENDPOINTS:
            match = pattern.fullmatch(request.path)
            if match and request.method == method:
                reply: Reply = getattr(self, name)(request, **match.groupdict())
                return reply
        return Reply.json(404, {"errorType": "NotFound", "errorMessage": f"no endpoint {request.path}"})

    # --- endpoints ----------------------------------------------------------------------------------------
    def next_invocation(self, request: Request) -> Reply:
        if self.ready_at is None:
            self.ready_at = time.monotonic()
            self.ready.set()
        invocation = self._work.get()  # blocks like Lambda's until there is work
        if invocation is None:  # closing: the process is being stopped
            self._work.put(None)
            return Reply.json(
                410, {"errorType": "SandboxClosed", "errorMessage": "the sandbox is shutting down"}
            )
        invocation.take()
        headers = {
            "Content-Type": "application/json",
            "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
            "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
            "Lambda-Runtime-Invoked-Function-Arn": self.function_arn,
            "Lambda-Runtime-Trace-Id": TRACE_ID,
        }
        if invocation.client_context:
            headers["Lambda-Runtime-Client-Context"] = invocation.client_context
        return Reply(200, invocation.payload, headers)

    def invocation_response(self, request: Request, request_id: str) -> Reply:
        refused = limits.response_too_large(len(request.body))
        if refused is None:
            return self._finish(request_id, Outcome("response", request.body))
        reply = self._finish(request_id, Outcome("error", refused, limits.RESPONSE_ERROR_TYPE))
        return reply if reply.status >= 400 else Reply.json(413, limits.runtime_refusal())

    def invocation_error(self, request: Request, request_id: str) -> Reply:
        return self._finish(request_id, Outcome("error", request.body, _error_type(request)))

    def init_error(self, request: Request) -> Reply:
        self.init_failure = Outcome("init_error", request.body, _error_type(request))
        self.init_failed.set()
        return ACCEPTED

    def restore_next(self, request: Request) -> Reply:
        self.snapshot_requested.set()
        self._restored.wait()
        return Reply(200)

    def restore_error(self, request: Request) -> Reply:
        self.restore_failure = Outcome("restore_error", request.body, _error_type(request))
        self.restore_failed.set()
        return ACCEPTED

    def _finish(self, request_id: str, outcome: Outcome) -> Reply:
        invocation = self._invocations.get(request_id)
        if invocation is None or invocation.taken_at is None:
            return Reply.json(400, {"errorType": "InvalidRequestID", "errorMessage": f"unknown {request_id}"})
        del self._invocations[request_id]
        invocation.finish(outcome)
        return ACCEPTED


def _error_type(request: Request) -> str | None:
    """The error's type: the header if the runtime sent one (awslambdaric does for init errors only), else the
    body's ``errorType``."""
    if request.headers.get(ERROR_TYPE_HEADER):
        return request.headers[ERROR_TYPE_HEADER]
    try:
        body = json.loads(request.body)
    except ValueError:
        return None
    return str(body["errorType"]) if isinstance(body, dict) and body.get("errorType") else None


def _handler(api: RuntimeAPI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the runtime client keeps its connection

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per poll would drown the function's own logs

        def handle(self) -> None:
            with contextlib.suppress(ConnectionError):  # a peer that went away (a killed runtime, a client)
                super().handle()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            reply = api.dispatch(Request(self.command, self.path.split("?", 1)[0], self.headers, body))
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = _serve  # the names BaseHTTPRequestHandler dispatches to

    return Handler
