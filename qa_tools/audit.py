"""Audit a deployed version on the CPU Lambda gave it: ``python -m qa_tools.audit FUNCTION [--qualifier live]``.

Sends the function the self-check event (``{"self_check": {...}}``, ``handler.api.self_check``): it re-answers
the golden questions its manifest carries and reports how many spans match the reference's, the threshold, the
CPU model and its int8 instructions. This is the pre-traffic hook's check, for a version already serving. The
invocation's own duration (Lambda's REPORT line) is reported too: the time on that CPU, which no emulation here
can measure. Needs ``lambda:InvokeFunction`` on the function.

Report (JSON) on stdout; exit status 0 when it passed, 1 below the threshold, 2 when it could not tell (no golden
answers in the manifest, or the invocation failed).
"""

from __future__ import annotations

import argparse
import base64
import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from botocore.client import BaseClient

_DURATION = re.compile(r"\tDuration: ([0-9.]+) ms")


def audit(
    client: BaseClient, function: str, qualifier: str | None = None, sample: int | None = None
) -> dict[str, Any]:
    """The version's self-check report, plus what Lambda says of the invocation (version, duration)."""
    target = {"FunctionName": function, **({"Qualifier": qualifier} if qualifier else {})}
    event = {"self_check": {"sample": sample} if sample else {}}
    response = client.invoke(**target, Payload=json.dumps(event).encode(), LogType="Tail")
    raw = response["Payload"].read().decode("utf-8", "replace")
    try:
        body = json.loads(raw)
    except ValueError:
        body = raw
    log = base64.b64decode(response.get("LogResult", "")).decode("utf-8", "replace")
    duration = _DURATION.search(log)
    return {
        "function": function,
        "qualifier": qualifier,
        "executed_version": response.get("ExecutedVersion"),
        "function_error": response.get("FunctionError"),
        "duration_ms": float(duration.group(1)) if duration else None,
        "self_check": body.get("self_check") if isinstance(body, dict) else None,
        "response": None if isinstance(body, dict) and "self_check" in body else body,
    }


def verdict(report: dict[str, Any]) -> tuple[int, str]:
    """(exit status, one line for a person)."""
    check = report["self_check"]
    if report["function_error"] or not isinstance(check, dict):
        return 2, f"the self-check did not run: {report['function_error'] or report['response']}"
    if check.get("passed") is None:
        return 2, f"nothing to compare: {check.get('reason')}"
    where = f"{check['variant']} on {check['cpu']} ({check['int8_path']})"
    line = f"{check['same_span']}/{check['count']} golden answers with the same span, {where}"
    if check["same_span"] < check["threshold"] * check["count"]:
        return 1, f"FAILED: {line}; threshold {check['threshold']:.0%}"
    return 0, f"passed: {line}; threshold {check['threshold']:.0%}"


def main(argv: Sequence[str] | None = None, client: BaseClient | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("function", help="function name or ARN")
    parser.add_argument("--qualifier", help="a version number or alias (default: $LATEST)")
    parser.add_argument("--sample", type=int, help="ask this many golden questions (default: all)")
    parser.add_argument("--region", help="default: the AWS CLI's")
    args = parser.parse_args(argv)
    if client is None:
        import boto3
        from botocore.config import Config

        config = Config(read_timeout=900, retries={"total_max_attempts": 1})
        client = boto3.client("lambda", region_name=args.region, config=config)
    report = audit(client, args.function, args.qualifier, args.sample)
    status, line = verdict(report)
    print(line, file=sys.stderr)
    print(json.dumps(report, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
