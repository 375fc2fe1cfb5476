"""lambda_handler driven with every sample event and generated variants: statuses, bodies and headers."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from handler.api.events import Shape, detect_shape
from tests.fixtures import EVENTS
from tests.fixtures.events import (
    EXPECTED,
    assert_answer,
    assert_result,
    assert_same_answer,
    header,
    http_body,
    invoke,
    load,
    rest_predict,
)


def test_every_sample_event_is_covered() -> None:
    assert sorted(p.name for p in EVENTS.glob("*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_event(bert_app: Any, name: str) -> None:
    event = load(name)
    result = invoke(bert_app, event)
    status = EXPECTED[name]
    if detect_shape(event) in (Shape.DIRECT, Shape.BATCH):  # the result is the answer or the error itself
        assert_result(result, event, status)
        return
    assert isinstance(status, int)
    assert result["statusCode"] == status, result
    assert header(result, "Content-Type") == "application/json"
    body = http_body(result)
    if status >= 400:
        assert set(body) == {"error"}
        assert body["error"]["status"] == status
        assert "Traceback" not in result["body"] and "/handler/" not in result["body"]


def test_one_code_path_for_every_shape(bert_app: Any) -> None:
    direct = invoke(bert_app, load("direct-single.json"))
    assert_answer(direct, load("direct-single.json")["context"])
    for name in ("rest-predict.json", "function-url-predict.json"):
        assert http_body(invoke(bert_app, load(name))) == direct
    http_event = load("http-api-predict.json")
    http_event["body"] = json.dumps(load("direct-single.json"))
    assert http_body(invoke(bert_app, http_event)) == direct


def test_batch_and_top_k_shapes(bert_app: Any) -> None:
    event = load("direct-batch.json")
    result = invoke(bert_app, event)
    assert isinstance(result, list) and len(result) == len(event["inputs"])
    for item, inp in zip(result, event["inputs"], strict=True):
        assert_answer(item, inp["context"])
    rest = http_body(invoke(bert_app, load("rest-predict-batch.json")))
    assert len(rest) == 2 and all(isinstance(x, list) and len(x) == 2 for x in rest)
    # Each batch item equals the same question asked alone.
    alone = invoke(bert_app, {**event["inputs"][1], **event["parameters"]})
    assert_same_answer(result[1], alone)


def test_hf_inference_toolkit_single_form(bert_app: Any) -> None:
    flat = load("direct-single.json")
    assert invoke(bert_app, {"inputs": flat}) == invoke(bert_app, flat)
    listed = invoke(bert_app, {"inputs": flat, "parameters": {"top_k": 3}})
    assert isinstance(listed, list) and 1 <= len(listed) <= 3
    assert [a["score"] for a in listed] == sorted((a["score"] for a in listed), reverse=True)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"question": "q"}, "context"),
        ({"context": "c"}, "question"),
        ({"question": 1, "context": "c"}, "question"),
        ({"question": "q", "context": "c", "top_k": 0}, "top_k"),
        ({"question": "q", "context": "c", "top_k": 10**9}, "top_k"),
        ({"question": "q", "context": "c", "doc_stride": -1}, "doc_stride"),
        ({"question": "q", "context": "c", "max_seq_len": 10**6}, "max_seq_len"),
        ({"question": "q", "context": "c", "handle_impossible_answer": "yes"}, "handle_impossible_answer"),
        ({"question": "q", "context": "c", "top_kk": 2}, "top_kk"),
        ({"inputs": {"question": "q", "context": "c"}, "parameters": {"bogus": 1}}, "parameters.bogus"),
        ({"inputs": [{"question": "q"}]}, "inputs"),
        ({"inputs": []}, "inputs"),
        ({"inputs": {"question": "q", "context": "c"}, "top_k": 2}, "parameters"),
        ({"question": "q", "context": "c", "parameters": {"top_k": 2}}, "parameters"),
    ],
)
def test_validation_names_the_field(bert_app: Any, payload: dict[str, Any], field: str) -> None:
    direct = invoke(bert_app, payload)
    assert direct["error"]["status"] == 422
    assert field in direct["error"]["message"]
    response = invoke(bert_app, rest_predict(payload))
    assert response["statusCode"] == 422
    assert field in http_body(response)["error"]["message"]


@pytest.mark.parametrize(
    ("payload", "missing"), [({"question": "q"}, "context"), ({"context": "c"}, "question")]
)
def test_a_missing_field_is_reported_as_required(
    bert_app: Any, payload: dict[str, Any], missing: str
) -> None:
    """Not "String should have at least 1 character": that is what an empty field gets."""
    said = f"{missing}: field required"
    assert invoke(bert_app, payload)["error"]["message"].startswith(said)
    assert http_body(invoke(bert_app, rest_predict(payload)))["error"]["message"].startswith(said)
    empty = {"question": "q", "context": "c", missing: ""}
    assert "field required" not in invoke(bert_app, empty)["error"]["message"]


def test_engine_level_invalid_parameters_are_422(bert_app: Any) -> None:
    # Valid types, but impossible for this model: a window longer than the model, a stride with no room.
    for extra in ({"max_seq_len": 4096}, {"max_seq_len": 32, "doc_stride": 31}):
        response = invoke(
            bert_app, rest_predict({"question": "a question", "context": "some context", **extra})
        )
        assert response["statusCode"] == 422
        assert http_body(response)["error"]["type"] == "invalid_input"


def test_non_object_and_non_utf8_bodies(bert_app: Any) -> None:
    assert invoke(bert_app, ["not", "an", "object"])["error"]["status"] == 400
    assert invoke(bert_app, rest_predict("[1, 2]"))["statusCode"] == 422
    latin1 = base64.b64encode('{"question": "caf\xe9"}'.encode("latin-1")).decode()
    response = invoke(bert_app, rest_predict(latin1, isBase64Encoded=True))
    assert response["statusCode"] == 400


@pytest.mark.parametrize(
    ("env", "payload", "status"),
    [
        ({"MAX_BODY_BYTES": "200"}, {"question": "q", "context": "x " * 200}, 413),
        ({"MAX_CONTEXT_CHARS": "50"}, {"question": "q", "context": "word " * 20}, 413),
        ({"MAX_BATCH_SIZE": "2"}, {"inputs": [{"question": "q", "context": "c"}] * 3}, 413),
        (
            {"MAX_WINDOWS": "2"},
            {"question": "q", "context": "word " * 500, "max_seq_len": 64, "doc_stride": 16},
            413,
        ),
    ],
)
def test_documented_limits(
    app_factory: Any, tiny_bert_dir: Path, env: dict[str, str], payload: Any, status: int
) -> None:
    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), **env)
    response = invoke(app, rest_predict(payload))
    assert response["statusCode"] == status
    body = http_body(response)
    assert body["error"]["type"] == "payload_too_large"
    assert "limit" in body["error"]["message"]


def test_time_budget_refuses_work_that_cannot_finish(bert_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The estimate is injected: the verdict must not depend on how fast this machine runs 36 windows."""
    monkeypatch.setattr(bert_app.SERVICE.budget, "ms_per_window", 100.0)
    payload = {"question": "q", "context": "word " * 400, "max_seq_len": 64, "doc_stride": 16}
    response = invoke(bert_app, rest_predict(payload), remaining_ms=3_000)  # 36 windows x 100 ms > 2.5 s
    assert response["statusCode"] == 413
    body = http_body(response)
    assert body["error"]["type"] == "time_budget_exceeded" and "36 windows" in body["error"]["message"]
    assert invoke(bert_app, rest_predict(payload), remaining_ms=4_200)["statusCode"] == 200  # 3.6 s < 3.7 s


def test_model_that_failed_to_load_is_503_for_every_request(app_factory: Any, tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{not json")
    app = app_factory(MODEL_LOCAL_PATH=str(tmp_path))
    for _ in range(3):  # the same answer each time: no re-raise, no retry loop
        response = invoke(app, load("rest-predict.json"))
        assert response["statusCode"] == 503
        assert header(response, "Retry-After") == "60"
        body = http_body(response)
        assert body["error"]["type"] == "model_unavailable"
        assert str(tmp_path) not in response["body"]
    health = invoke(app, load("rest-health.json"))
    assert health["statusCode"] == 503
    assert http_body(health)["status"] == "unavailable"
    assert invoke(app, load("direct-single.json"))["error"]["status"] == 503


def test_configuration_error_fails_init(app_factory: Any) -> None:
    with pytest.raises(ValueError, match="MODEL_S3_URI"):
        app_factory()
    with pytest.raises(ValueError, match="QA_BACKEND"):
        app_factory(MODEL_LOCAL_PATH="/x", QA_BACKEND="tensorflow")


def test_health_reports_model_backend_and_versions(bert_app: Any) -> None:
    body = http_body(invoke(bert_app, load("http-api-health.json")))
    assert body["status"] == "ok"
    assert body["backend"] == "torch"
    assert body["torch"] and body["transformers"] and body["model"]


def test_openapi_document(bert_app: Any) -> None:
    event = load("rest-health.json")
    event["path"] = event["resource"] = "/openapi.json"
    doc = http_body(invoke(bert_app, event))
    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(post["responses"])
    schemas = doc["components"]["schemas"]
    assert {"question", "context", "inputs", "parameters", "top_k"} <= set(
        schemas["PredictRequest"]["properties"]
    )


def test_logs_and_metrics_are_structured(bert_app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    invoke(bert_app, load("rest-predict.json"))
    invoke(bert_app, load("bad-rest-wrong-type.json"))
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = [line for line in lines if "_aws" in line]
    names = {m["Name"] for line in emf for d in line["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"InferenceMs", "WindowsPerRequest", "Errors"} <= names
    errors = [line for line in emf if "Errors" in line]
    assert errors[0]["ErrorType"] == "validation_error"
