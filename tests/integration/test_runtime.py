"""The container's real entry path: `python -m awslambdaric handler.app.lambda_handler` against our Runtime API.

Through ``qa_tools.local``'s sandbox, the same code path as the local invoke command: init, every event shape,
configuration mistakes failing init by name through /init/error, and a transient S3 failure answering 503.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from qa_tools.local.sandbox import FunctionConfig, LocalFunction
from tests.fixtures import ROOT
from tests.fixtures.events import assert_same_answer, load


def handler_config(**env: str) -> FunctionConfig:
    """The image's handler with exactly these variables (plus what Lambda itself sets)."""
    return FunctionConfig(
        name="qa",
        handler="handler.app.lambda_handler",
        memory_mb=3008,
        timeout_s=120,
        environment={"POWERTOOLS_TRACE_DISABLED": "1", **env},
        task_root_sources=(ROOT / "handler",),
    )


@pytest.fixture
def local_function() -> Iterator[list[LocalFunction]]:
    started: list[LocalFunction] = []
    yield started
    for function in started:
        function.close()


def run(started: list[LocalFunction], **env: str) -> LocalFunction:
    function = LocalFunction(handler_config(**env), log=None)
    started.append(function)
    return function


def test_runtime_client_serves_every_shape(local_function: list[LocalFunction], tiny_bert_dir: Path) -> None:
    function = run(local_function, MODEL_LOCAL_PATH=str(tiny_bert_dir))
    direct = function.invoke(json.dumps(load("direct-single.json")).encode())
    assert direct.kind == "response" and direct.init_ms is not None  # the cold start
    answer = direct.json()
    context = load("direct-single.json")["context"]
    assert context[answer["start"] : answer["end"]] == answer["answer"]

    rest = function.invoke(json.dumps(load("rest-predict.json")).encode())
    assert rest.kind == "response" and rest.init_ms is None  # warm: the same sandbox
    assert rest.json()["statusCode"] == 200 and json.loads(rest.json()["body"]) == answer

    bad = function.invoke(json.dumps(load("bad-rest-wrong-type.json")).encode())
    assert bad.kind == "response" and bad.json()["statusCode"] == 422

    batch = function.invoke(json.dumps(load("direct-batch.json")).encode())
    assert batch.kind == "response" and len(batch.json()) == 2


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "MODEL_S3_URI"),  # neither model source
        ({"MODEL_S3_URI": "my-bucket/models/x"}, "MODEL_S3_URI"),  # not s3://
        ({"MODEL_S3_URI": "https://my-bucket/models/"}, "MODEL_S3_URI"),
        ({"MODEL_LOCAL_PATH": "/no/such/model"}, "MODEL_LOCAL_PATH"),
        ({"MODEL_LOCAL_PATH": "{tmp}"}, "MODEL_LOCAL_PATH"),  # a directory, but no model in it
        ({"MODEL_LOCAL_PATH": "{model}", "QA_BACKEND": "tensorflow"}, "QA_BACKEND"),
        (
            {"MODEL_LOCAL_PATH": "{model}", "QA_BACKEND": "onnx", "QA_ONNX_PRECISION": "int4"},
            "QA_ONNX_PRECISION",
        ),
        ({"MODEL_LOCAL_PATH": "{model}", "MAX_WINDOWS": "lots"}, "MAX_WINDOWS"),
    ],
)
def test_a_configuration_mistake_fails_init_by_name(
    local_function: list[LocalFunction],
    tiny_bert_dir: Path,
    tmp_path: Path,
    env: dict[str, str],
    variable: str,
) -> None:
    env = {k: v.format(tmp=tmp_path, model=tiny_bert_dir) for k, v in env.items()}
    function = run(local_function, **env)
    result = function.invoke(json.dumps(load("rest-predict.json")).encode())
    assert result.kind == "init_error"  # not a 503 for ever: no retry fixes a deploy mistake
    assert result.error_type == "ConfigurationError"
    body: dict[str, Any] = result.json()
    assert body["errorType"] == "ConfigurationError"
    assert variable in body["errorMessage"]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_s3_still_answers_503(local_function: list[LocalFunction], tmp_path: Path) -> None:
    """A transient cause: init succeeds, every request gets 503 with Retry-After, and a new sandbox may load."""
    function = run(
        local_function,
        MODEL_S3_URI="s3://models/tiny/",
        MODEL_DIR=str(tmp_path / "models"),
        AWS_ENDPOINT_URL_S3=f"http://127.0.0.1:{closed_port()}",
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",  # noqa: S106 - a dummy for the refused connection
        AWS_EC2_METADATA_DISABLED="true",
    )
    rest = function.invoke(json.dumps(load("rest-predict.json")).encode())
    assert rest.kind == "response"
    assert rest.json()["statusCode"] == 503
    assert rest.json()["multiValueHeaders"]["Retry-After"] == ["60"]
    direct = function.invoke(json.dumps(load("direct-single.json")).encode())
    assert direct.json()["error"]["type"] == "model_unavailable"
    assert (
        "(DownloadFailed)" in direct.json()["error"]["message"]
    )  # the refused connection, not something else


def test_runtime_client_answers_a_distributed_map_batch(
    local_function: list[LocalFunction], tiny_bert_dir: Path
) -> None:
    """The ItemBatcher payload through the real client: a list, each item the answer a single invoke gets."""
    function = run(local_function, MODEL_LOCAL_PATH=str(tiny_bert_dir))

    def invoke(payload: Any) -> Any:
        outcome = function.invoke(json.dumps(payload).encode())
        assert outcome.kind == "response", outcome.body
        return outcome.json()

    for name in ("batch-distributed-map.json", "bad-batch-items.json"):
        batch = load(name)
        results = invoke(batch)
        assert len(results) == len(batch["Items"])
        parameters = batch["BatchInput"]["parameters"]
        for got, item in zip(results, batch["Items"], strict=True):
            if not isinstance(item, dict):
                assert got["error"]["status"] == 400
                continue
            request = {k: v for k, v in item.items() if k not in ("id", "answers")}
            alone = invoke({**parameters, **request})
            expected = alone if isinstance(alone, dict) else {"answers": alone}
            assert_same_answer(got, {"id": item["id"], **expected})
    assert invoke(load("bad-batch-parameters.json"))["error"]["status"] == 422
