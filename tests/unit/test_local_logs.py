"""The function's log relay (``qa_tools.local.logs``): every byte passed on, the model-load failure's cause read."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from handler.errors import MODEL_LOAD_FAILED
from qa_tools.local.logs import LogRelay, model_failure

FAILURE = {
    "level": "ERROR",
    "message": MODEL_LOAD_FAILED,
    "error_type": "AccessDenied",
    "error": "no AWS credentials to read s3://b/p/manifest.json",
    "exception": "Traceback (most recent call last):\n ...",
}


def test_a_childs_output_is_relayed_whole_and_the_cause_is_read() -> None:
    line = json.dumps(FAILURE)
    first, rest = line[:40].encode(), line[40:].encode() + b"\n"
    script = (  # the record written in two pieces, around a non-ASCII character split across writes
        "import os, sys\n"
        "os.write(1, b'[WARNING] before \\xc3')\n"
        "os.write(2, b'\\xa9\\n')\n"
        f"os.write(1, {first!r})\n"
        f"os.write(1, {rest!r})\n"
        "os.write(2, b'tail without a newline')\n"
    )
    sink = io.StringIO()
    relay = LogRelay(sink)
    child = subprocess.Popen([sys.executable, "-c", script], stdout=relay.write_fd, stderr=relay.write_fd)
    relay.child_started()
    assert child.wait(timeout=60) == 0
    relay.close()
    assert sink.getvalue() == f"[WARNING] before \u00e9\n{line}\ntail without a newline"
    assert relay.model_failure == "AccessDenied: no AWS credentials to read s3://b/p/manifest.json"


def test_only_the_model_load_failure_line_names_a_cause() -> None:
    assert model_failure(b"plain text") is None
    assert model_failure(json.dumps({"message": "model loaded"}).encode()) is None
    assert model_failure(b"{not json") is None
    assert model_failure(
        json.dumps({"message": MODEL_LOAD_FAILED, "error_type": "HashMismatch"}).encode()
    ) == ("HashMismatch")
