"""qa_tools/update_function.py against a real botocore Lambda client with stubbed responses (botocore Stubber
checks each request's parameters against the Lambda API model and the order of calls)."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from qa_tools import update_function as uf
from qa_tools.smoke import QUESTIONS

ARN = "arn:aws:lambda:eu-west-1:123456789012:function:faq-answerer"
IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/faq-answerer@sha256:" + "ab" * 32
CONFIG = {
    "FunctionArn": ARN,
    "FunctionName": "faq-answerer",
    "PackageType": "Image",
    "Architectures": ["arm64"],
}


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Any:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    return boto3.client("lambda", region_name="eu-west-1")


def _answer(question: Any) -> dict[str, Any]:
    word = question.context.split()[-1].rstrip(".")
    start = question.context.index(word)
    return {"answer": word, "start": start, "end": start + len(word)}


def _payload(body: Any) -> StreamingBody:
    raw = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    return StreamingBody(io.BytesIO(raw), len(raw))


def _stub_until_published(stub: Stubber, tags: dict[str, str] | None = None) -> None:
    stub.add_response("get_function_configuration", CONFIG, {"FunctionName": "faq-answerer"})
    stub.add_response("list_tags", {"Tags": tags or {"team": "faq"}}, {"Resource": ARN})
    if tags:
        return
    stub.add_response(
        "get_alias", {"FunctionVersion": "6", "RevisionId": "rev-6"}, {"FunctionName": ARN, "Name": "live"}
    )
    stub.add_response(
        "update_function_code",
        {"Version": "7", "FunctionArn": f"{ARN}:7"},
        {"FunctionName": ARN, "ImageUri": IMAGE, "Publish": True},
    )
    stub.add_response(
        "get_function",
        {"Configuration": {**CONFIG, "LastUpdateStatus": "Successful"}},
        {"FunctionName": ARN},
    )
    stub.add_response(
        "get_function_configuration", {**CONFIG, "State": "Active"}, {"FunctionName": ARN, "Qualifier": "7"}
    )


def _stub_answers(stub: Stubber, answers: list[Any], executed: str = "7", error: str | None = None) -> None:
    for body in answers:
        response = {"StatusCode": 200, "ExecutedVersion": executed, "Payload": _payload(body)}
        if error:
            response["FunctionError"] = error
        stub.add_response("invoke", response, {"FunctionName": f"{ARN}:7", "Payload": ANY})


def test_a_good_version_gets_the_alias(client: Any) -> None:
    with Stubber(client) as stub:
        _stub_until_published(stub)
        _stub_answers(stub, [_answer(q) for q in QUESTIONS])
        stub.add_response(
            "update_alias",
            {"FunctionVersion": "7"},
            {"FunctionName": ARN, "Name": "live", "FunctionVersion": "7", "RevisionId": "rev-6"},
        )
        outcome = uf.update(client, "faq-answerer", IMAGE, waiter_delay=0)
        stub.assert_no_pending_responses()
    assert outcome.summary() == {"function": ARN, "version": "7", "alias": "live", "previous": "6"}


@pytest.mark.parametrize(
    ("answers", "kwargs", "problem"),
    [
        ([{"answer": "Paris", "start": 0, "end": 5}] * 2, {}, "not the context text"),
        ([{"errorMessage": "boom"}] * 2, {"error": "Unhandled"}, "function error"),
        (["not json"] * 2, {}, "not an answer"),
        ([_answer(q) for q in QUESTIONS], {"executed": "6"}, "version 6 answered"),
    ],
)
def test_a_bad_version_never_gets_the_alias(client: Any, answers: list, kwargs: dict, problem: str) -> None:
    with Stubber(client) as stub:  # no update_alias stubbed: calling it would fail the test
        _stub_until_published(stub)
        _stub_answers(stub, answers, **kwargs)
        with pytest.raises(uf.SmokeFailed, match=problem) as failed:
            uf.update(client, "faq-answerer", IMAGE, waiter_delay=0)
        stub.assert_no_pending_responses()
    assert "live stays on 6" in str(failed.value)


def test_a_stack_owned_function_is_refused_before_any_change(client: Any) -> None:
    with Stubber(client) as stub:
        _stub_until_published(stub, tags={uf.OWNER_TAG: "extractive-qa"})
        with pytest.raises(uf.Refused, match="sam deploy"):
            uf.update(client, "faq-answerer", IMAGE, waiter_delay=0)
        stub.assert_no_pending_responses()


@pytest.mark.parametrize(
    "image",
    [
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/faq-answerer:latest",
        "123456789012.dkr.ecr.eu-west-1.amazonaws.com/faq-answerer@sha256:abc",
        "docker.io/library/faq@sha256:" + "ab" * 32,
    ],
)
def test_only_an_ecr_image_by_digest_is_accepted(client: Any, image: str) -> None:
    with Stubber(client), pytest.raises(uf.Refused, match="by digest"):
        uf.update(client, "faq-answerer", image)


def test_a_zip_function_is_refused(client: Any) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_function_configuration", {**CONFIG, "PackageType": "Zip"}, {"FunctionName": "f"}
        )
        with pytest.raises(uf.Refused, match="not a container image"):
            uf.check_updatable(client, "f")


@pytest.mark.parametrize(("architecture", "platform"), [("arm64", "linux/arm64"), ("x86_64", "linux/amd64")])
def test_the_image_is_built_for_the_functions_architecture(
    client: Any, architecture: str, platform: str
) -> None:
    with Stubber(client) as stub:
        stub.add_response(
            "get_function_configuration", {**CONFIG, "Architectures": [architecture]}, {"FunctionName": "f"}
        )
        assert uf.platform(client, "f") == platform
