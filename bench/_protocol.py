"""The child side of coldstart.py's line protocol: JSON lines on stdout, commands on stdin. Stdlib only.

Both kinds of child (our handler, and the seeds' recipe under another interpreter) import this, so it must not
import ``handler`` or any third-party package. A child reports its cold start once ("ready"), then runs the
requests the parent names one at a time, so the parent can interleave the configurations request by request
and a burst of load on this shared machine hits all of them alike instead of whichever ran at the time.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

Handler = Callable[[Any], Any]


def open_channel() -> TextIO:
    """Keeps the real stdout for the protocol and sends fd 1 to stderr: library prints and the handler's JSON
    logs (Powertools writes to stdout) must not be mistaken for results."""
    sys.stdout.flush()
    channel = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def send(channel: TextIO, message: dict[str, Any]) -> None:
    channel.write(json.dumps(message) + "\n")
    channel.flush()


def peak_rss_mib() -> float:
    """This process's peak resident set so far: VmHWM, the high-water mark of its own address space.

    Not getrusage's ru_maxrss: Linux carries the parent's high-water mark over fork + exec, so a child of a
    parent that once held 2.6 GB (the ONNX export) reports at least 2.6 GB. ru_maxrss is the fallback off
    Linux, where /proc does not exist.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def startup_seconds(spawned_at: float, began: float) -> float:
    """Interpreter start-up: from the parent's spawn (wall clock) to the first line of the child."""
    return max(0.0, began - spawned_at)


class LambdaContext:
    """The attributes Powertools and the handler read from Lambda's context object."""

    function_name = "extractive-qa-bench"
    function_version = "$LATEST"
    memory_limit_in_mb = 3008
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:extractive-qa-bench"
    aws_request_id = "bench-request"
    log_group_name = "/aws/lambda/extractive-qa-bench"
    log_stream_name = "bench"

    def get_remaining_time_in_millis(self) -> int:
        return 900_000  # the time budget check must never refuse a benchmark request


def check_answer(response: Any) -> None:
    """A benchmark of error responses measures nothing: fail the child loudly instead."""
    if isinstance(response, dict) and "error" in response:
        raise RuntimeError(f"the handler answered with an error: {response['error']}")


def invoke(handler: Handler, payload: Any) -> float:
    """One direct invoke, in milliseconds."""
    started = time.perf_counter()
    response = handler(payload, LambdaContext())
    elapsed = (time.perf_counter() - started) * 1000
    check_answer(response)
    return elapsed


def serve(channel: TextIO, handler: Handler, requests: dict[str, list[Any]]) -> None:
    """Runs ``{"workload": name, "index": i}`` commands until ``{"done": true}``, answering each with its
    latency; the last answer carries the peak RSS over the whole life of the sandbox."""
    for line in sys.stdin:
        command = json.loads(line)
        if command.get("done"):
            send(channel, {"event": "done", "peak_rss_mib": peak_rss_mib()})
            return
        payload = requests[command["workload"]][command["index"]]
        send(channel, {"event": "latency", "ms": invoke(handler, payload)})


def load_requests(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        return json.load(f)
