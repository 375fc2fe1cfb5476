"""The function's log stream: relayed to ours unchanged, and read for the one fact a person needs from it.

The runtime process writes its logs (the handler's JSON lines, the runtime client's warnings and tracebacks) into
a pipe; a thread copies every byte to the tool's log destination (stderr), so the runtime's record stays whole,
and notes the cause of a failed model load: the function then answers 503 naming only the error's type, for its
callers, while the cause ("no AWS credentials to read s3://.../manifest.json") is in that log line. The tool
puts it in its own status line, the last line a person reads.
"""

from __future__ import annotations

import codecs
import json
import os
import select
import threading
import time
from typing import IO, Any

from handler.errors import MODEL_LOAD_FAILED

SETTLE_S = 2.0  # at most this long for the relay to catch up with what the runtime wrote before it answered
_READ = 1 << 16
_MAX_LINE = 1 << 20  # a longer line (a huge print) is relayed but not kept for reading


class LogRelay:
    """A pipe for a child's stdout and stderr, copied to ``sink`` (an fd, a file, or None to discard)."""

    def __init__(self, sink: int | IO[Any] | None) -> None:
        self.sink = sink
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a character may span two reads
        self.model_failure: str | None = None  # "AccessDenied: no AWS credentials to read s3://..."
        self._read_fd, self.write_fd = os.pipe()
        self._partial = b""
        self._lock = threading.Lock()  # held while a chunk is read and handled: settle() waits for it
        self._closing = threading.Event()
        self._thread = threading.Thread(target=self._run, name="function-logs", daemon=True)
        self._thread.start()

    def child_started(self) -> None:
        """Closes our copy of the write end: the child holds its own, and EOF comes when it exits."""
        os.close(self.write_fd)

    def settle(self, timeout_s: float = SETTLE_S) -> None:
        """Returns once everything written so far has been relayed (or after ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if self._closing.is_set() or not _readable(self._read_fd, 0):
                    return
            time.sleep(0.005)

    def close(self) -> None:
        """Relays what is left (EOF comes once the child has exited), then stops."""
        self._thread.join(timeout=SETTLE_S)
        self._closing.set()  # a grandchild may still hold the pipe open: stop reading anyway
        self._thread.join(timeout=SETTLE_S)
        if not self._thread.is_alive():
            os.close(self._read_fd)

    def _run(self) -> None:
        while not self._closing.is_set():
            if not _readable(self._read_fd, 0.1):
                continue
            with self._lock:
                chunk = os.read(self._read_fd, _READ)
                if not chunk:  # EOF: the runtime process and everything it started have exited
                    self._flush_partial()
                    return
                self._relay(chunk)

    def _relay(self, chunk: bytes) -> None:
        self._write(chunk)
        *lines, self._partial = (self._partial + chunk).split(b"\n")
        for line in lines:
            self._note(line)
        if len(self._partial) > _MAX_LINE:
            self._partial = b"..."  # never JSON: the rest of this line is not read

    def _flush_partial(self) -> None:
        if self._partial:
            self._note(self._partial)
            self._partial = b""

    def _note(self, line: bytes) -> None:
        cause = model_failure(line)
        if cause is not None:
            self.model_failure = cause

    def _write(self, data: bytes) -> None:
        if self.sink is None:
            return
        if isinstance(self.sink, int):
            view = memoryview(data)
            while view:
                view = view[os.write(self.sink, view) :]
        else:
            self.sink.write(self._decoder.decode(data))
            self.sink.flush()


def model_failure(line: bytes) -> str | None:
    """The cause a "model failed to load" log line names (``ErrorType: message``), or None for other lines."""
    if not line.lstrip().startswith(b"{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or record.get("message") != MODEL_LOAD_FAILED:
        return None
    error, kind = record.get("error"), record.get("error_type")
    if not error:
        return str(kind) if kind else None
    return f"{kind}: {error}" if kind else str(error)


def _readable(fd: int, timeout_s: float) -> bool:
    try:
        return bool(select.select([fd], [], [], timeout_s)[0])
    except (OSError, ValueError):  # closed under us
        return False
