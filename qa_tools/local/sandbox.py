"""A local Lambda sandbox: the runtime process the image's CMD starts (``python -m awslambdaric HANDLER``) behind
its own Runtime API on 127.0.0.1, with the function's environment and a /tmp of its own.

Lifecycle as on Lambda: init runs once when a sandbox starts; invocations run one at a time, each with a deadline
(the function's timeout, counted from when the runtime takes the event); a timeout, a crash or a failed init ends
the sandbox, and the next invocation starts a fresh one. Each sandbox has its own temporary directory as TMPDIR,
and the variables that mean Lambda's /tmp (the image's MODEL_DIR, HF_HOME, ...) point into it; it is removed with
the sandbox: like Lambda's /tmp, it lives and dies with the sandbox, and nothing is left on your disk.
"""

from __future__ import annotations

import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from qa_tools.local import limits
from qa_tools.local.logs import LogRelay
from qa_tools.local.runtime_api import Invocation, Outcome, RuntimeAPI

POLL_S = 0.05  # how often a waiting invocation checks on the runtime process and its deadline
STDERR = 2  # the runtime's stdout and stderr (the function's logs) go to ours: our stdout is for results


@dataclass(frozen=True)
class FunctionConfig:
    """Everything a sandbox needs to run the function; ``qa_tools.local.config`` builds it from the project."""

    name: str
    handler: str  # module.function, as the image's CMD names it
    memory_mb: int
    timeout_s: float
    environment: Mapping[str, str]  # the function's own variables (the runtime's are added by the sandbox)
    task_root_sources: tuple[Path, ...]  # what the image copies into its task root, linked into the sandbox's
    tmp_variables: frozenset[str] = frozenset()  # whose /tmp... values mean Lambda's /tmp: the sandbox's own
    region: str = "us-east-1"
    account_id: str = "123456789012"
    python: str = field(default=sys.executable)

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.name}"


@dataclass(frozen=True)
class Result:
    """An invocation's result as the Invoke API reports it: the payload, and whether it is a function error."""

    kind: (
        str  # "response" | "error" (raised by the handler) | "timeout" | "init_error" | "exit" (runtime died)
    )
    body: bytes  # the payload: the handler's JSON result, or the error JSON Lambda would return
    request_id: str
    duration_ms: float
    init_ms: float | None = None  # on the invocation that started the sandbox
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        return self.kind == "response"

    def json(self) -> Any:
        return json.loads(self.body)

    def report(self, memory_mb: int) -> str:
        """Lambda's REPORT log line (without the billing and memory-use figures a local run cannot know)."""
        init = f"\tInit Duration: {self.init_ms:.2f} ms" if self.init_ms is not None else ""
        status = (
            "" if self.ok else f"\tStatus: {self.kind}" + (f" ({self.error_type})" if self.error_type else "")
        )
        return (
            f"REPORT RequestId: {self.request_id}\tDuration: {self.duration_ms:.2f} ms\t"
            f"Memory Size: {memory_mb} MB{init}{status}"
        )


def is_lambda_tmp(path: str) -> bool:
    """Lambda's only writable directory, which each local sandbox replaces with one of its own."""
    return path == "/tmp" or path.startswith("/tmp/")  # noqa: S108 - named in order to be mapped away


def error_body(message: str, error_type: str) -> bytes:
    """The JSON Lambda returns for an error it raises itself (timeout, runtime exit)."""
    return json.dumps({"errorMessage": message, "errorType": error_type}).encode()


class Sandbox:
    """One runtime process and its Runtime API; started on construction (init begins at once)."""

    def __init__(self, config: FunctionConfig, log: int | IO[Any] | None = STDERR) -> None:
        self.config = config
        self.reported_init = False
        self.api = RuntimeAPI(config.arn)
        self.dir = Path(tempfile.mkdtemp(prefix="qa-local-sandbox-"))
        self.tmp = self.dir / "tmp"
        self.task_root = self.dir / "task"
        self.logs = LogRelay(log)  # the runtime's stdout and stderr, relayed to ``log``
        try:
            self.tmp.mkdir()
            self.task_root.mkdir()
            for source in config.task_root_sources:
                (self.task_root / source.name).symlink_to(source.resolve())
            self.process = subprocess.Popen(  # noqa: S603 - our interpreter, the image's CMD
                [config.python, "-m", "awslambdaric", config.handler],
                cwd=self.task_root,
                env=self._environment(),
                stdin=subprocess.DEVNULL,
                stdout=self.logs.write_fd,
                stderr=self.logs.write_fd,
                start_new_session=True,  # Ctrl-C stops the tool, which stops the runtime; not both at once
            )
        except BaseException:
            self.logs.child_started()
            self._cleanup()
            raise
        self.logs.child_started()

    def _environment(self) -> dict[str, str]:
        """The function's variables (Lambda's /tmp mapped into the sandbox's), then those Lambda itself sets."""
        c = self.config
        env = {k: self._in_sandbox(v) if k in c.tmp_variables else v for k, v in c.environment.items()}
        day = datetime.now(UTC).strftime("%Y/%m/%d")
        env.update(
            AWS_LAMBDA_RUNTIME_API=self.api.address,
            AWS_LAMBDA_FUNCTION_NAME=c.name,
            AWS_LAMBDA_FUNCTION_MEMORY_SIZE=str(c.memory_mb),
            AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
            AWS_LAMBDA_LOG_GROUP_NAME=f"/aws/lambda/{c.name}",
            AWS_LAMBDA_LOG_STREAM_NAME=f"{day}/[$LATEST]{secrets.token_hex(16)}",
            AWS_LAMBDA_INITIALIZATION_TYPE="on-demand",
            AWS_REGION=c.region,
            AWS_DEFAULT_REGION=c.region,
            LAMBDA_TASK_ROOT=str(self.task_root),
            _HANDLER=c.handler,
            TMPDIR=str(self.tmp),
            TZ=":UTC",
            LANG="en_US.UTF-8",
        )
        return env

    def _in_sandbox(self, value: str) -> str:
        return str(self.tmp) + value[4:] if is_lambda_tmp(value) else value

    def wait_ready(self) -> Outcome | None:
        """Blocks until init is over; returns its failure, if it failed."""
        while not self.api.ready.wait(POLL_S):
            if self.api.init_failed.is_set():
                return self.api.init_failure
            if self.process.poll() is not None:
                message = f"Runtime exited during init with exit status {self.process.returncode}"
                return Outcome("init_error", error_body(message, "Runtime.ExitError"), "Runtime.ExitError")
        return None

    def invoke(self, invocation: Invocation) -> Result:
        self.api.submit(invocation)
        while not invocation.done.wait(POLL_S):
            if invocation.expired():
                stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
                message = f"{stamp} {invocation.request_id} Task timed out after {self.config.timeout_s:.2f} seconds"
                return self._ended(invocation, "timeout", message, "Sandbox.Timedout")
            if self.process.poll() is not None:
                message = f"RequestId: {invocation.request_id} Error: Runtime exited with error: exit status {self.process.returncode}"
                return self._ended(invocation, "exit", message, "Runtime.ExitError")
        outcome = invocation.outcome
        if outcome is None:  # unreachable: set before done
            raise RuntimeError("invocation done without an outcome")
        return Result(
            outcome.kind, outcome.body, invocation.request_id, self._elapsed_ms(invocation), self._init_ms(),
            outcome.error_type,
        )  # fmt: skip

    def _ended(self, invocation: Invocation, kind: str, message: str, error_type: str) -> Result:
        body = error_body(message, error_type)
        return Result(
            kind, body, invocation.request_id, self._elapsed_ms(invocation), self._init_ms(), error_type
        )

    def _elapsed_ms(self, invocation: Invocation) -> float:
        return 0.0 if invocation.taken_at is None else (time.monotonic() - invocation.taken_at) * 1000

    def _init_ms(self) -> float | None:
        """The init duration, reported once: on the sandbox's first invocation, as Lambda's REPORT line does."""
        if self.reported_init:
            return None
        self.reported_init = True
        return self.api.init_ms

    def model_failure(self) -> str | None:
        """Why the model failed to load at init, as the function logged it; None if it did not fail."""
        self.logs.settle()
        return self.logs.model_failure

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        self.api.close()
        self.logs.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class LocalFunction:
    """Invokes the function as Lambda does: reuses the warm sandbox, starts a fresh one when there is none.

    One invocation at a time (a sandbox serves one); concurrent callers wait their turn.
    """

    def __init__(self, config: FunctionConfig, *, log: int | IO[Any] | None = STDERR) -> None:
        self.config = config
        self.log = log
        self._sandbox: Sandbox | None = None
        self._lock = threading.Lock()

    def start(self) -> Result | None:
        """Starts a sandbox now and waits for its init (the first invocation then runs warm); returns a failure."""
        with self._lock:
            sandbox = self._ready_sandbox()
            failure = sandbox.wait_ready()
            if failure is None:
                return None
            self._retire()
            return Result("init_error", failure.body, "", 0.0, sandbox.api.init_ms, failure.error_type)

    def invoke(self, payload: bytes, *, client_context: str | None = None) -> Result:
        with self._lock:
            sandbox = self._ready_sandbox()
            invocation = Invocation(payload, self.config.timeout_s, client_context)
            failure = sandbox.wait_ready()
            if (
                failure is not None
            ):  # Lambda returns the init error as the invocation's, and retries init next time
                self._retire()
                return Result(
                    "init_error", failure.body, invocation.request_id, 0.0, None, failure.error_type
                )
            result = sandbox.invoke(invocation)
            # These end the sandbox on Lambda: a refused response makes the runtime client exit (its post fails)
            if result.kind in ("timeout", "exit") or result.error_type == limits.RESPONSE_ERROR_TYPE:
                self._retire()
            else:
                sandbox.logs.settle()  # its logs before anything the caller prints about the result
            return result

    def model_failure(self) -> str | None:
        """Why the warm sandbox's model failed to load at init (from its logs); None if it loaded or none runs."""
        with self._lock:
            return None if self._sandbox is None else self._sandbox.model_failure()

    def _ready_sandbox(self) -> Sandbox:
        if self._sandbox is not None and self._sandbox.process.poll() is not None:
            self._retire()  # the runtime died between invocations: the next one is a cold start, as on Lambda
        if self._sandbox is None:
            self._sandbox = Sandbox(self.config, self.log)
        return self._sandbox

    def _retire(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def close(self) -> None:
        with self._lock:
            self._retire()

    def __enter__(self) -> LocalFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
