"""Golden answers round trip: publish records the reference's answers to the probes in the manifest, the real
handler re-asks them on a self-check event, and the pre-traffic hook and ``qa_tools.audit`` judge its report."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber

from handler.hardware import cpu
from handler.store.manifest import MANIFEST_NAME, Manifest
from qa_tools import audit
from qa_tools.fidelity import gate
from qa_tools.publish import publish
from tests.fixtures.lambda_env import FakeContext
from tests.infra.test_pre_traffic_hook import _good, _run, hook  # noqa: F401 - the hook fixture

ONNX = {"QA_BACKEND": "onnx"}


@pytest.fixture(scope="module")
def published(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fp32 and int8 published locally; the tiny random model's int8 is lossy, so the gate must be waived."""
    target = tmp_path_factory.mktemp("golden") / "model"
    publish(
        str(tiny_bert_dir), str(target), variants=["onnx-fp32", "onnx-int8"], progress=False, allow_lossy=True
    )
    return target


def manifest(path: Path) -> Manifest:
    return Manifest.from_json((path / MANIFEST_NAME).read_bytes())


def self_check(app_factory: Any, model: Path, precision: str, event: Any = None) -> dict[str, Any]:
    app = app_factory(MODEL_LOCAL_PATH=str(model), QA_ONNX_PRECISION=precision, **ONNX)
    return app.lambda_handler(event or {"self_check": {}}, FakeContext(remaining_ms=600_000))


def test_publish_records_the_references_answers_to_every_probe(published: Path) -> None:
    golden = manifest(published).golden
    assert golden is not None
    probe_name, items = gate.probe_set()
    assert (golden.reference, golden.probes, golden.threshold) == (
        "onnx-fp32",
        probe_name,
        gate.DEFAULT_THRESHOLD,
    )
    assert [a.id for a in golden.answers] == [item.id for item in items]
    assert len(golden.contexts) == len({item.context for item in items})


def test_the_reference_agrees_with_itself(published: Path, app_factory: Any) -> None:
    report = self_check(app_factory, published, "fp32")["self_check"]
    assert report["variant"] == "onnx-fp32"
    assert report["count"] == len(manifest(published).golden.answers)
    assert report["same_span"] == report["count"]
    assert report["passed"] is True
    assert (report["cpu"], report["int8"]) == (cpu.describe()["model"], cpu.describe()["int8"])


def test_a_lossy_variant_agrees_as_often_as_publish_measured(published: Path, app_factory: Any) -> None:
    """Same machine, same probes: the self-check's agreement is publish's fidelity, give or take a near-tie
    that batching breaks the other way."""
    fidelity = manifest(published).fidelity["onnx-int8"]
    report = self_check(app_factory, published, "int8")["self_check"]
    assert abs(report["same_span"] - fidelity["same_span"]) <= 2
    assert report["passed"] is (report["agreement"] >= report["threshold"])
    assert len(report["differences"]) == min(5, report["count"] - report["same_span"])


def test_changed_golden_answers_fail_and_name_the_differences(
    published: Path, app_factory: Any, tmp_path: Path
) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    for path in published.iterdir():
        (copy / path.name).symlink_to(path)
    doc = json.loads((published / MANIFEST_NAME).read_text())
    for answer in doc["golden"]["answers"][:20]:  # 20 of 214 moved to another span: 90.7 % < 95 %
        context = doc["golden"]["contexts"][answer["context"]]
        start = 1 if answer["start"] == 0 else 0
        answer.update(start=start, end=start + 1, text=context[start : start + 1])
    (copy / MANIFEST_NAME).unlink()
    (copy / MANIFEST_NAME).write_text(json.dumps(doc))
    report = self_check(app_factory, copy, "fp32")["self_check"]
    assert (report["same_span"], report["passed"]) == (report["count"] - 20, False)
    assert report["differences"][0]["id"] == doc["golden"]["answers"][0]["id"]


def test_a_sample_and_bad_options(published: Path, app_factory: Any) -> None:
    assert (
        self_check(app_factory, published, "fp32", {"self_check": {"sample": 7}})["self_check"]["count"] == 7
    )
    bad = self_check(app_factory, published, "fp32", {"self_check": {"sample": 0}})
    assert bad["error"]["status"] == 400


def test_without_golden_answers_the_check_says_so(tiny_bert_dir: Path, app_factory: Any) -> None:
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir))  # a model directory without a manifest
    report = app.lambda_handler({"self_check": {}}, FakeContext())["self_check"]
    assert report["passed"] is None
    assert "no golden answers" in report["reason"]


def test_the_hook_passes_the_real_handlers_report_and_fails_a_changed_one(
    hook: ModuleType,  # noqa: F811 - the fixture imported above
    published: Path,
    app_factory: Any,
) -> None:
    event = {"self_check": hook.SELF_CHECK}
    report = self_check(app_factory, published, "fp32", event)
    assert report["self_check"]["count"] == hook.SELF_CHECK["sample"]
    assert _run(hook, answer=_good(hook), self_check=report) == {"status": "Succeeded", "problem": None}
    below = {"self_check": {**report["self_check"], "same_span": 60}}  # 60/64 < 95 %
    failed = _run(hook, answer=_good(hook), self_check=below)
    assert failed["status"] == "Failed"
    assert f"60/64 golden answers with the same span on {report['self_check']['cpu']}" in failed["problem"]


def _lambda_client(body: Any, log: str) -> tuple[Any, Stubber]:
    client = boto3.client(
        "lambda",
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",  # noqa: S106 - a stubbed client's dummy credentials
    )
    payload = json.dumps(body).encode()
    stubber = Stubber(client)
    stubber.add_response(
        "invoke",
        {
            "StatusCode": 200,
            "ExecutedVersion": "8",
            "LogResult": base64.b64encode(log.encode()).decode(),
            "Payload": StreamingBody(io.BytesIO(payload), len(payload)),
        },
        {"FunctionName": "qa", "Qualifier": "live", "Payload": b'{"self_check": {}}', "LogType": "Tail"},
    )
    return client, stubber


REPORT_LINE = "REPORT RequestId: 1\tDuration: 1234.56 ms\tBilled Duration: 1235 ms\tMemory Size: 3008 MB\n"


@pytest.mark.parametrize(("same_delta", "status"), [(0, 0), (-2, 1)])
def test_audit_reports_a_deployed_versions_agreement_cpu_and_duration(
    published: Path, app_factory: Any, capsys: pytest.CaptureFixture[str], same_delta: int, status: int
) -> None:
    body = self_check(app_factory, published, "fp32", {"self_check": {"sample": 16}})
    body["self_check"]["same_span"] += same_delta  # 14/16 = 87.5 % < 95 %
    client, stubber = _lambda_client(body, REPORT_LINE)
    capsys.readouterr()  # the function's own output (metrics) so far
    with stubber:
        assert audit.main(["qa", "--qualifier", "live"], client=client) == status
        stubber.assert_no_pending_responses()
    out, err = capsys.readouterr()
    report = json.loads(out)
    assert report["duration_ms"] == 1234.56
    assert report["executed_version"] == "8"
    assert report["self_check"]["cpu"] == cpu.describe()["model"]
    assert ("FAILED" in err) is (status == 1)


def test_audit_cannot_tell_without_golden_answers(capsys: pytest.CaptureFixture[str]) -> None:
    client, stubber = _lambda_client({"self_check": {"passed": None, "reason": "no golden answers"}}, "")
    with stubber:
        assert audit.main(["qa", "--qualifier", "live"], client=client) == 2
    assert "nothing to compare" in capsys.readouterr().err
