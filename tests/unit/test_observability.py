"""The Tracer (and with it the X-Ray SDK) exists only once an invocation is traced; Powertools' switch-offs hold.

Each case runs in a fresh interpreter: whether ``aws_xray_sdk`` was imported is the observable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from handler.observability import invocation_sampled
from tests.fixtures import ROOT

SAMPLED = "Root=1-6743a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
UNSAMPLED = "Root=1-6743a1b2-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=0"

_PROBE = """
import json, os, sys
import handler.observability as o
steps = []
for header in sys.argv[1:]:
    os.environ["_X_AMZN_TRACE_ID"] = header
    with o.subsegment("inference") as segment:
        segment.put_annotation("windows", 1)
    steps.append({"xray": "aws_xray_sdk" in sys.modules, "tracer": o.active_tracer() is not None})
print(json.dumps(steps))
"""


def run_invocations(*headers: str, **env: str) -> list[dict[str, bool]]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_", "LAMBDA_"))}
    full = {**base, "LAMBDA_TASK_ROOT": str(ROOT), "AWS_XRAY_DAEMON_ADDRESS": "127.0.0.1:9", **env}
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *headers],
        cwd=ROOT,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_unsampled_invocations_never_import_the_xray_sdk() -> None:
    steps = run_invocations(UNSAMPLED, UNSAMPLED)
    assert steps == [{"xray": False, "tracer": False}] * 2


def test_the_first_sampled_invocation_creates_the_tracer_and_it_stays() -> None:
    steps = run_invocations(UNSAMPLED, SAMPLED, UNSAMPLED)
    assert steps == [
        {"xray": False, "tracer": False},
        {"xray": True, "tracer": True},
        {"xray": True, "tracer": True},
    ]


@pytest.mark.parametrize(
    "env",
    [{"POWERTOOLS_TRACE_DISABLED": "true"}, {"AWS_SAM_LOCAL": "true"}, {"LAMBDA_TASK_ROOT": ""}],
    ids=["disabled", "sam-local", "outside-lambda"],
)
def test_powertools_switch_offs_still_apply(env: dict[str, str]) -> None:
    assert run_invocations(SAMPLED, **env) == [{"xray": False, "tracer": False}]


@pytest.mark.parametrize(
    ("header", "sampled"),
    [
        (SAMPLED, True),
        (UNSAMPLED, False),
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1;Lineage=a87bd80c:1", True),
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1;Sampled=?", False),
        ("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=1;Sampled=10", False),
        ("", False),
    ],
)
def test_sampled_is_read_from_the_trace_header(header: str, sampled: bool) -> None:
    assert invocation_sampled(header) is sampled
