"""The container's real entry path: `python -m awslambdaric handler.app.lambda_handler` against a Runtime API."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures import ROOT
from tests.fixtures.events import assert_same_answer
from tests.fixtures.runtime_api import RuntimeAPI, start_runtime_api

EVENTS = ROOT / "events"


def start_runtime(api: RuntimeAPI, **env: str) -> subprocess.Popen[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "QA_"))}
    full_env = {
        **base,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_FUNCTION_NAME": "qa",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_REGION": "us-east-1",
        "POWERTOOLS_TRACE_DISABLED": "1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    return subprocess.Popen(
        [sys.executable, "-m", "awslambdaric", "handler.app.lambda_handler"],
        cwd=ROOT,
        env=full_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def runtime_api() -> Iterator[RuntimeAPI]:
    api = start_runtime_api()
    yield api
    api.server.shutdown()


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.kill()
    proc.wait(timeout=30)


def event(name: str) -> Any:
    return json.loads((EVENTS / name).read_text())


def test_runtime_client_serves_every_shape(runtime_api: RuntimeAPI, tiny_bert_dir: Path) -> None:
    proc = start_runtime(runtime_api, MODEL_LOCAL_PATH=str(tiny_bert_dir))
    try:
        direct = runtime_api.invoke(event("direct-single.json"))
        assert direct.kind == "response"
        context = event("direct-single.json")["context"]
        assert context[direct.body["start"] : direct.body["end"]] == direct.body["answer"]

        rest = runtime_api.invoke(event("rest-predict.json"))
        assert rest.kind == "response" and rest.body["statusCode"] == 200
        assert json.loads(rest.body["body"]) == direct.body

        bad = runtime_api.invoke(event("bad-rest-wrong-type.json"))
        assert bad.kind == "response" and bad.body["statusCode"] == 422

        batch = runtime_api.invoke(event("direct-batch.json"))
        assert batch.kind == "response" and len(batch.body) == 2
        assert proc.poll() is None  # one sandbox, many invocations
    finally:
        stop(proc)


def test_init_failure_is_reported_through_init_error(runtime_api: RuntimeAPI) -> None:
    proc = start_runtime(runtime_api)  # no MODEL_S3_URI nor MODEL_LOCAL_PATH: a deploy mistake
    try:
        outcome = runtime_api.wait("init", timeout=120)
        assert outcome.kind == "init_error"
        assert "MODEL_S3_URI" in outcome.body["errorMessage"]
        assert outcome.headers.get("Lambda-Runtime-Function-Error-Type") == "ConfigurationError"
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            stop(proc)


def test_runtime_client_answers_a_distributed_map_batch(runtime_api: RuntimeAPI, tiny_bert_dir: Path) -> None:
    """The ItemBatcher payload through the real client: a list, each item the answer a single invoke gets."""
    proc = start_runtime(runtime_api, MODEL_LOCAL_PATH=str(tiny_bert_dir))
    try:
        for name in ("batch-distributed-map.json", "bad-batch-items.json"):
            batch = event(name)
            outcome = runtime_api.invoke(batch)
            assert outcome.kind == "response" and len(outcome.body) == len(batch["Items"])
            parameters = batch["BatchInput"]["parameters"]
            for got, item in zip(outcome.body, batch["Items"], strict=True):
                if not isinstance(item, dict):
                    assert got["error"]["status"] == 400
                    continue
                request = {k: v for k, v in item.items() if k not in ("id", "answers")}
                alone = runtime_api.invoke({**parameters, **request}).body
                expected = alone if isinstance(alone, dict) else {"answers": alone}
                assert_same_answer(got, {"id": item["id"], **expected})
        rejected = runtime_api.invoke(event("bad-batch-parameters.json"))
        assert rejected.kind == "response" and rejected.body["error"]["status"] == 422
        assert proc.poll() is None
    finally:
        stop(proc)
