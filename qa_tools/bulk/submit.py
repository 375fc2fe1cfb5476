"""``bulk submit``: start the bulk state machine on a JSONL file in S3 and follow its Map Run to the end.

The execution input is what the template's definition reads (``BulkStateMachine`` in template.yaml):
``{"input": {"Bucket", "Key"}, "output": {"Bucket", "Prefix"}, "parameters": {...}}``. Progress comes from
the Map Run (``ListMapRuns``, then ``DescribeMapRun``'s ``itemCounts``: questions, not batches). When the
execution ends, its output names the results manifest the ResultWriter wrote (``ResultWriterDetails``).

Step Functions counts questions in *failed batches* (function errors after retries, refused batches); a
question answered with an item error (``validation_error``, ``out_of_time``, ...) is in a successful batch
and shows up only in the result lines.
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.client import BaseClient
from tqdm import tqdm

from handler.store import S3Location, error_code

DONE = ("succeeded", "failed", "timedOut", "aborted")  # itemCounts of questions that are finished
FAILED = ("failed", "timedOut", "aborted")
POLL_S = 5.0


@dataclass(frozen=True)
class Outcome:
    execution_arn: str
    status: str  # RUNNING only with --no-wait
    map_run_arn: str | None = None
    counts: Mapping[str, int] | None = None  # DescribeMapRun itemCounts
    manifest: str | None = None  # s3:// URI of the results manifest
    error: str | None = None
    cause: str | None = None

    @property
    def failed(self) -> int:
        return sum(self.counts.get(k, 0) for k in FAILED) if self.counts else 0

    def summary(self) -> dict[str, Any]:
        body: dict[str, Any] = {"execution": self.execution_arn, "status": self.status}
        if self.map_run_arn:
            body["map_run"] = self.map_run_arn
        if self.counts is not None:
            body["questions"] = dict(self.counts)
            body["failed_questions"] = self.failed
        if self.manifest:
            body["results_manifest"] = self.manifest
            body["results"] = self.manifest.rsplit("/", 1)[0] + "/"
        if self.error or self.cause:
            body["error"], body["cause"] = self.error, self.cause
        return body


def parse_object_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/key`` of one object (not a prefix); raises ValueError."""
    location = S3Location.parse(uri)
    key = location.prefix.rstrip("/")
    if not key or uri.rstrip().endswith("/"):
        raise ValueError(f"expected s3://bucket/key.jsonl (one object), got {uri!r}")
    return location.bucket, key


def execution_input(input_uri: str, output_uri: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    bucket, key = parse_object_uri(input_uri)
    output = S3Location.parse(output_uri)
    # The ResultWriter adds "/<map run id>/..." itself: the prefix goes without its trailing slash.
    return {
        "input": {"Bucket": bucket, "Key": key},
        "output": {"Bucket": output.bucket, "Prefix": output.prefix.rstrip("/")},
        "parameters": dict(parameters),
    }


def check_input(s3: BaseClient, bucket: str, key: str) -> None:
    """Fails now, by name, on a missing input (the state machine would fail on it only after starting)."""
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
            raise ValueError(f"s3://{bucket}/{key} does not exist") from None
        print(f"warning: could not check s3://{bucket}/{key}: {error_code(exc)}", file=sys.stderr)


def default_name(now: datetime | None = None) -> str:
    """Execution names are unique per state machine for 90 days: a timestamp to find it, a suffix to be unique."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"qa-bulk-{stamp}-{uuid.uuid4().hex[:8]}"


def start(client: BaseClient, state_machine_arn: str, payload: Mapping[str, Any], name: str) -> str:
    response = client.start_execution(
        stateMachineArn=state_machine_arn, name=name, input=json.dumps(payload, separators=(",", ":"))
    )
    return str(response["executionArn"])


def follow(
    client: BaseClient,
    execution_arn: str,
    *,
    poll_s: float = POLL_S,
    progress: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    """Polls until the execution ends, showing the Map Run's finished questions out of its total."""
    map_run_arn: str | None = None
    counts: dict[str, int] | None = None
    with tqdm(total=0, unit="q", disable=not progress, file=sys.stderr, dynamic_ncols=True) as bar:
        while True:
            execution = client.describe_execution(executionArn=execution_arn)
            if map_run_arn is None:
                runs = client.list_map_runs(executionArn=execution_arn).get("mapRuns", [])
                map_run_arn = runs[0]["mapRunArn"] if runs else None
            if map_run_arn is not None:
                counts = client.describe_map_run(mapRunArn=map_run_arn)["itemCounts"]
                bar.total = counts.get("total", 0)
                bar.n = sum(counts.get(k, 0) for k in DONE)
                bar.set_postfix(failed=sum(counts.get(k, 0) for k in FAILED), refresh=False)
                bar.refresh()
            if execution["status"] != "RUNNING":
                break
            sleep(poll_s)
    return Outcome(
        execution_arn,
        execution["status"],
        map_run_arn,
        counts,
        _manifest(execution.get("output")),
        execution.get("error"),
        execution.get("cause"),
    )


def _manifest(output: str | None) -> str | None:
    """The ResultWriter's manifest from the execution output ``{"MapRunArn", "ResultWriterDetails"}``."""
    try:
        details = json.loads(output or "null")["ResultWriterDetails"]
        return f"s3://{details['Bucket']}/{details['Key']}"
    except (ValueError, TypeError, KeyError):
        return None
