"""``python -m qa_tools.bulk submit``: its requests (botocore Stubber) and a whole job on a local Step Functions
(moto server on 127.0.0.1 executing the template's own definition, adapted only where moto cannot follow:
``tests.fixtures.bulk.MOTO_GAPS``). What neither can show is listed in docs/bulk-jobs.md."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import boto3
import pytest
import requests
from botocore.stub import Stubber

from qa_tools.bulk.__main__ import main
from qa_tools.bulk.submit import check_input, default_name, execution_input, follow, start
from tests.fixtures.bulk import MOTO_GAPS, bulk_definition, for_moto, template
from tests.fixtures.s3 import REGION, Bucket, MotoS3

STATE_MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:bulk"
EXECUTION = "arn:aws:states:us-east-1:123456789012:execution:bulk:job-1"
MAP_RUN = "arn:aws:states:us-east-1:123456789012:mapRun:bulk/AnswerAll:0f0e"
WHEN = datetime(2026, 11, 30, tzinfo=UTC)


def client(service: str) -> Any:
    return boto3.client(  # a Stubber answers every call: these credentials never sign anything
        service,
        region_name=REGION,
        aws_access_key_id="x",
        aws_secret_access_key="x",  # noqa: S106
    )


def counts(succeeded: int, failed: int, total: int) -> dict[str, int]:
    running = total - succeeded - failed
    return {"pending": 0, "running": running, "succeeded": succeeded, "failed": failed, "timedOut": 0,
            "aborted": 0, "total": total, "resultsWritten": succeeded + failed}  # fmt: skip


def map_run(succeeded: int, failed: int, total: int) -> dict[str, Any]:
    return {
        "mapRunArn": MAP_RUN, "executionArn": EXECUTION, "status": "RUNNING", "startDate": WHEN,
        "maxConcurrency": 10, "toleratedFailurePercentage": 5.0, "toleratedFailureCount": 0,
        "itemCounts": counts(succeeded, failed, total), "executionCounts": counts(succeeded, failed, total),
    }  # fmt: skip


def test_execution_input_names_the_input_object_and_the_results_prefix() -> None:
    payload = execution_input("s3://data/bulk/input/dev.jsonl", "s3://out/bulk/results/", {"top_k": 2})
    assert payload == {
        "input": {"Bucket": "data", "Key": "bulk/input/dev.jsonl"},
        "output": {"Bucket": "out", "Prefix": "bulk/results"},  # the ResultWriter adds /<map run id>/
        "parameters": {"top_k": 2},
    }
    for bad in ("s3://data/", "s3://data/bulk/input/", "https://data/x.jsonl", "data/x.jsonl"):
        with pytest.raises(ValueError, match="s3://"):
            execution_input(bad, "s3://out/results/", {})
    name = default_name(WHEN)
    assert name.startswith("qa-bulk-20261130T000000Z-") and len(name) <= 80 and name != default_name(WHEN)


def test_start_and_follow_send_exactly_these_requests() -> None:
    sfn = client("stepfunctions")
    payload = execution_input("s3://data/in.jsonl", "s3://data/results/", {})
    sleeps: list[float] = []
    output = {
        "MapRunArn": MAP_RUN,
        "ResultWriterDetails": {"Bucket": "data", "Key": "results/0f0e/manifest.json"},
    }
    with Stubber(sfn) as stub:
        stub.add_response(
            "start_execution",
            {"executionArn": EXECUTION, "startDate": WHEN},
            {
                "stateMachineArn": STATE_MACHINE,
                "name": "job-1",
                "input": json.dumps(payload, separators=(",", ":")),
            },
        )
        described = {"executionArn": EXECUTION, "stateMachineArn": STATE_MACHINE, "startDate": WHEN}
        by_execution = {"executionArn": EXECUTION}
        stub.add_response("describe_execution", {**described, "status": "RUNNING"}, by_execution)
        stub.add_response("list_map_runs", {"mapRuns": []}, by_execution)  # not started yet
        stub.add_response("describe_execution", {**described, "status": "RUNNING"}, by_execution)
        run_item = {"executionArn": EXECUTION, "mapRunArn": MAP_RUN, "stateMachineArn": STATE_MACHINE,
                    "startDate": WHEN}  # fmt: skip
        stub.add_response("list_map_runs", {"mapRuns": [run_item]}, by_execution)
        stub.add_response("describe_map_run", map_run(40, 2, 100), {"mapRunArn": MAP_RUN})
        stub.add_response(
            "describe_execution",
            {**described, "status": "SUCCEEDED", "stopDate": WHEN, "output": json.dumps(output)},
            by_execution,
        )
        stub.add_response("describe_map_run", map_run(97, 3, 100), {"mapRunArn": MAP_RUN})

        assert start(sfn, STATE_MACHINE, payload, "job-1") == EXECUTION
        outcome = follow(sfn, EXECUTION, poll_s=7.5, progress=False, sleep=sleeps.append)
        stub.assert_no_pending_responses()

    assert sleeps == [7.5, 7.5]
    assert (outcome.status, outcome.map_run_arn, outcome.failed) == ("SUCCEEDED", MAP_RUN, 3)
    summary = outcome.summary()
    assert summary["results_manifest"] == "s3://data/results/0f0e/manifest.json"
    assert summary["results"] == "s3://data/results/0f0e/"
    assert summary["questions"]["total"] == 100 and summary["failed_questions"] == 3


def test_follow_reports_a_failed_execution() -> None:
    sfn = client("stepfunctions")
    with Stubber(sfn) as stub:
        stub.add_response(
            "describe_execution",
            {"executionArn": EXECUTION, "stateMachineArn": STATE_MACHINE, "startDate": WHEN, "status": "FAILED",
             "error": "States.ExceedToleratedFailureThreshold", "cause": "too many failed items"},
        )  # fmt: skip
        stub.add_response("list_map_runs", {"mapRuns": []})
        outcome = follow(sfn, EXECUTION, progress=False, sleep=lambda s: None)
    summary = outcome.summary()
    assert summary["status"] == "FAILED" and summary["error"] == "States.ExceedToleratedFailureThreshold"
    assert "results_manifest" not in summary and "questions" not in summary


def test_a_missing_input_fails_before_any_execution(capsys: pytest.CaptureFixture[str]) -> None:
    s3 = client("s3")
    with Stubber(s3) as stub:
        stub.add_client_error("head_object", "404", http_status_code=404,
                              expected_params={"Bucket": "data", "Key": "in.jsonl"})  # fmt: skip
        with pytest.raises(ValueError, match=r"s3://data/in.jsonl does not exist"):
            check_input(s3, "data", "in.jsonl")
        stub.add_client_error("head_object", "403", http_status_code=403)
        check_input(s3, "data", "in.jsonl")  # no right to look: the job itself will say
    assert "could not check s3://data/in.jsonl: 403" in capsys.readouterr().err


def _leaves(node: Any, path: str = "") -> dict[str, Any]:
    if isinstance(node, dict):
        return {
            k: v
            for key, child in node.items()
            for k, v in _leaves(child, f"{path}.{key}".lstrip(".")).items()
        }
    if isinstance(node, list):
        return {k: v for i, child in enumerate(node) for k, v in _leaves(child, f"{path}[{i}]").items()}
    return {path: node}


def test_the_moto_variant_changes_only_what_moto_cannot_run() -> None:
    real, adapted = _leaves(bulk_definition(template())), _leaves(for_moto(bulk_definition(template())))
    changed = {p for p in real.keys() | adapted.keys() if real.get(p) != adapted.get(p)}
    owner = {
        p: [gap for gap in MOTO_GAPS if p == gap or p.startswith((f"{gap}.", f"{gap}["))] for p in changed
    }
    assert all(owner.values()), {p for p, gaps in owner.items() if not gaps}
    assert {g for gaps in owner.values() for g in gaps} == set(MOTO_GAPS)  # each gap is really there
    task = "States.AnswerAll.ItemProcessor.States.Answer"
    assert adapted[f"{task}.OutputPath"] == real[f"{task}.OutputPath"]
    assert adapted[f"{task}.Next"] == real[f"{task}.Next"]


# --- a whole job on moto ------------------------------------------------------------------------------------
@pytest.fixture
def local_sfn(s3_env: MotoS3, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:
    """moto's executing Step Functions backend on the test S3 server; its own S3 calls stay on loopback."""
    config = f"{s3_env.endpoint}/moto-api/config"
    requests.post(
        config, json={"stepfunctions": {"execute_state_machine": True}}, timeout=10
    ).raise_for_status()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SFN", s3_env.endpoint)
    monkeypatch.setenv("MOTO_PORT", str(s3_env.port))  # where moto's interpreter sends its own S3 calls
    yield s3_env
    requests.post(config, json={"stepfunctions": {"execute_state_machine": False}}, timeout=10)


def batch(*results: dict[str, Any]) -> dict[str, Any]:
    """One child's input in the moto variant: the lambda:invoke result its Pass state stands in for."""
    return {"Payload": list(results)}


REFUSED = {"Payload": {"error": {"type": "payload_too_large", "message": "the batch needs 3000 model windows",
                                 "status": 413}}}  # fmt: skip


@pytest.mark.parametrize(("batches", "failed", "code"), [
    ([batch({"id": "a", "answer": "x"}), batch({"id": "b", "answer": "y"})], 0, 0),
    ([batch({"id": "a", "answer": "x"}), REFUSED, batch({"id": "c", "error": {"status": 503}})], 1, 1),
])  # fmt: skip
def test_submit_runs_the_templates_state_machine_on_moto(
    local_sfn: MotoS3,
    s3_bucket: Bucket,
    capsys: pytest.CaptureFixture[str],
    batches: list[dict[str, Any]],
    failed: int,
    code: int,
) -> None:
    tmpl = template()
    definition = for_moto(bulk_definition(tmpl))
    sfn = boto3.client("stepfunctions")
    arn = sfn.create_state_machine(
        name=f"bulk-{uuid.uuid4().hex[:8]}",
        definition=json.dumps(definition),
        roleArn="arn:aws:iam::123456789012:role/bulk",
    )["stateMachineArn"]
    s3_bucket.put("bulk/input/batches.json", json.dumps(batches).encode())
    source, results = s3_bucket.uri("bulk/input/batches.json"), s3_bucket.uri("bulk/results/")

    assert main(["submit", source, results, "--state-machine", arn, "--poll-s", "0.05", "--no-progress",
                 "--parameters", '{"top_k": 2}']) == code  # fmt: skip

    summary = json.loads(capsys.readouterr().out)
    assert summary["status"] == "SUCCEEDED" and summary["failed_questions"] == failed
    assert summary["questions"]["total"] == len(batches)
    assert summary["questions"]["succeeded"] == len(batches) - failed
    manifest = summary["results_manifest"]
    assert manifest.startswith(f"{results}") and manifest.endswith("/manifest.json")
    assert manifest.removeprefix(f"s3://{s3_bucket.name}/") in s3_bucket.object_keys()
    execution = sfn.describe_execution(executionArn=summary["execution"])
    assert json.loads(execution["input"]) == execution_input(source, results, {"top_k": 2})
    # The Settings state turned the template's parameter strings into the numbers the Map uses.
    run = sfn.describe_map_run(mapRunArn=summary["map_run"])
    params = tmpl["Parameters"]
    assert run["maxConcurrency"] == int(params["BulkMaxConcurrency"]["Default"])
    assert run["toleratedFailurePercentage"] == float(params["BulkToleratedFailurePercentage"]["Default"])


def test_submit_refuses_what_it_can_check_locally(
    local_sfn: MotoS3, s3_bucket: Bucket, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("QA_BULK_STATE_MACHINE", raising=False)
    source, results = s3_bucket.uri("bulk/input/missing.jsonl"), s3_bucket.uri("bulk/results/")
    assert main(["submit", source, results, "--state-machine", STATE_MACHINE]) == 2
    assert "missing.jsonl does not exist" in capsys.readouterr().err
    s3_bucket.put("bulk/input/x.jsonl", b"{}\n")
    assert main(["submit", s3_bucket.uri("bulk/input/x.jsonl"), results]) == 2  # no state machine
    assert "--state-machine" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["submit", s3_bucket.uri("bulk/input/x.jsonl"), results, "--state-machine", STATE_MACHINE,
              "--parameters", '{"top_k": 0}'])  # fmt: skip
    assert "top_k" in capsys.readouterr().err
    unknown = STATE_MACHINE.replace(":bulk", ":does-not-exist")
    assert main(["submit", s3_bucket.uri("bulk/input/x.jsonl"), results, "--state-machine", unknown]) == 1
    assert "error: AWS:" in capsys.readouterr().err
