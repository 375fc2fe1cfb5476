"""SnapStart's lifecycle through the real runtime client: init, before-snapshot hooks, /restore/next, restore.

``python -m awslambdaric handler.app.lambda_handler`` runs with AWS_LAMBDA_INITIALIZATION_TYPE=snap-start
against the Runtime API stand-in, which holds /restore/next until the test "restores". The S3 the model came
from is a private moto server the test stops before restoring: a restored copy must need nothing from init's
network. A real snapshot (memory and disk copied to another microVM) cannot be taken here; what these tests
prove is the order of events, what the process holds at the snapshot call, and what the hooks do.
"""

from __future__ import annotations

import base64
import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from moto.server import ThreadedMotoServer

from qa_tools.local.runtime_api import Invocation, Outcome, RuntimeAPI
from qa_tools.publish import publish
from qa_tools.tiny_models import PlantedModel
from tests.fixtures import ROOT
from tests.fixtures.events import EXPECTED, http_body, load
from tests.fixtures.s3 import LOOPBACK, REGION

PREFIX = "models/snap/"
SHAPES = [name for name, status in EXPECTED.items() if status == 200]  # every event shape, predict and health
WAIT_S = 240  # generous: only how long a broken run takes to fail, never what a passing run must beat


@dataclass
class PrivateS3:
    """A moto server of this test's own, so the test can stop it ("the network of init is gone")."""

    server: ThreadedMotoServer
    port: int
    bucket: str  # unique: moto keeps one in-process store behind every server it runs

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{PREFIX}"

    def reachable(self) -> bool:
        try:
            socket.create_connection((LOOPBACK, self.port), timeout=2).close()
            return True
        except OSError:
            return False


@pytest.fixture
def private_s3(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[PrivateS3]:
    import boto3

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-config"),
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "AWS_ENDPOINT_URL_S3": f"http://{LOOPBACK}:{port}",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = PrivateS3(server, port, f"snapstart-{uuid.uuid4().hex[:12]}")
    boto3.client("s3").create_bucket(Bucket=s3.bucket)
    yield s3
    if s3.reachable():
        server.stop()


@pytest.fixture
def runtime_api() -> Iterator[RuntimeAPI]:
    api = RuntimeAPI("arn:aws:lambda:us-east-1:123456789012:function:qa:1")
    yield api
    api.close()  # also releases a runtime still waiting in /restore/next


def invoke(api: RuntimeAPI, event: Any) -> Outcome:
    invocation = Invocation(json.dumps(event).encode(), timeout_s=WAIT_S)
    api.submit(invocation)
    assert invocation.done.wait(WAIT_S), "no answer"
    assert invocation.outcome is not None
    return invocation.outcome


def launch(api: RuntimeAPI, stdout: Path, handler: str = "handler.app.lambda_handler", **env: str) -> Any:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MODEL_", "QA_", "POWERTOOLS_"))}
    full_env = {
        **base,
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
        "AWS_LAMBDA_FUNCTION_NAME": "qa",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "3008",
        "AWS_LAMBDA_FUNCTION_VERSION": "1",
        "AWS_REGION": REGION,
        "POWERTOOLS_TRACE_DISABLED": "1",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    with stdout.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "awslambdaric", handler],
            cwd=ROOT,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if isinstance(doc, dict):
            lines.append(doc)
    return lines


def messages(path: Path) -> list[str]:
    return [doc["message"] for doc in json_lines(path) if isinstance(doc.get("message"), str)]


def cold_start_flags(path: Path) -> list[bool]:
    """Per EMF document (one per invocation here): whether it carries the ColdStart metric."""
    flags = []
    for doc in json_lines(path):
        emf = doc.get("_aws", {}).get("CloudWatchMetrics")
        if emf and any(m["Name"] == "Requests" for d in emf for m in d["Metrics"]):
            flags.append(False)
        elif emf and any(m["Name"] == "ColdStart" for d in emf for m in d["Metrics"]):
            flags.append(True)
    return flags


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=60)


def test_snapshot_after_fetch_and_warm_up_then_every_shape_answers_without_s3(
    runtime_api: RuntimeAPI, private_s3: PrivateS3, planted_bert: PlantedModel, tmp_path: Path
) -> None:
    publish(str(planted_bert.path), private_s3.uri, variants=["torch"], progress=False)
    model_dir, log = tmp_path / "models", tmp_path / "stdout.log"
    proc = launch(runtime_api, log, MODEL_S3_URI=private_s3.uri, MODEL_DIR=str(model_dir))
    try:
        assert runtime_api.snapshot_requested.wait(WAIT_S), f"no /restore/next call:\n{log.read_text()}"
        at_snapshot = {doc["message"]: doc for doc in json_lines(log) if "message" in doc}
        # Fetched (into memory: SnapStart's /tmp is 512 MB), loaded and warmed before the snapshot call.
        assert at_snapshot["model warm-up"]["store"] == "memory" and at_snapshot["model warm-up"]["bytes"] > 0
        assert at_snapshot["model loaded"]["store"] == "memory"
        snapshot = at_snapshot["snapshot"]
        assert snapshot["full_window_ms"] > 0 and snapshot["s3_clients_alive"] == 0
        assert snapshot["model_dir_bytes"] == 0 and not model_dir.exists()
        assert "restored" not in at_snapshot

        private_s3.server.stop()  # the restored copy runs where init's network is gone
        assert not private_s3.reachable()
        runtime_api.restore()

        for name in SHAPES:
            event = load(name)
            outcome = invoke(runtime_api, event)
            assert outcome.kind == "response", (name, outcome.body)
            direct = name.startswith("direct")
            body = outcome.json() if direct else http_body(outcome.json())
            assert direct or outcome.json()["statusCode"] == 200, (name, body)
            for answer, source in _answers(event, body):
                assert source[answer["start"] : answer["end"]] == answer["answer"]
        assert proc.poll() is None
        said = messages(log)
        assert said.index("restored") > said.index("snapshot")
        # ColdStart means "the first request in this environment": once, on the first restored request.
        assert cold_start_flags(log)[:3] == [True, False, False]
    finally:
        stop(proc)


def _answers(event: dict[str, Any], body: Any) -> Iterator[tuple[dict[str, Any], str]]:
    """(answer, context) pairs of a predict response; nothing for health."""
    if isinstance(body, dict) and body.get("status") == "ok":
        return
    raw = event.get("body")
    if event.get("isBase64Encoded"):
        raw = base64.b64decode(raw).decode("utf-8")
    request = event if "body" not in event else json.loads(raw)
    inputs = request.get("inputs", request)
    items = inputs if isinstance(inputs, list) else [inputs]
    answers = body if isinstance(body, list) else [body]
    for found, item in zip(answers, items, strict=True):  # top_k > 1: a list of answers per input
        yield from ((a, item["context"]) for a in (found if isinstance(found, list) else [found]))


def test_a_model_that_did_not_load_fails_the_publish_not_the_requests(
    runtime_api: RuntimeAPI, private_s3: PrivateS3, tmp_path: Path
) -> None:
    log = tmp_path / "stdout.log"
    proc = launch(runtime_api, log, MODEL_S3_URI=private_s3.uri, MODEL_DIR=str(tmp_path / "models"))  # empty
    try:
        assert runtime_api.init_failed.wait(WAIT_S), log.read_text()
        outcome = runtime_api.init_failure
        assert outcome is not None and outcome.kind == "init_error"
        assert outcome.error_type == "Runtime.BeforeSnapshotError"
        body = outcome.json()
        assert body["errorType"] == "SnapshotRefused"
        assert body["errorMessage"].startswith("not snapshotting: the model failed to load at init")
        assert "PrefixEmpty" in body["errorMessage"]  # the cause, by name
        assert proc.wait(timeout=WAIT_S) == 64  # awslambdaric's exit code for a before-snapshot failure
        assert not runtime_api.snapshot_requested.is_set()
    finally:
        stop(proc)


def test_a_failing_after_restore_step_is_reported_through_restore_error(
    runtime_api: RuntimeAPI, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    log = tmp_path / "stdout.log"
    proc = launch(
        runtime_api,
        log,
        "tests.fixtures.snapstart_faults.lambda_handler",
        MODEL_LOCAL_PATH=str(tiny_bert_dir),
    )
    try:
        assert runtime_api.snapshot_requested.wait(WAIT_S), log.read_text()
        runtime_api.restore()
        assert runtime_api.restore_failed.wait(WAIT_S), log.read_text()
        outcome = runtime_api.restore_failure
        assert outcome is not None and outcome.kind == "restore_error"
        assert outcome.error_type == "Runtime.AfterRestoreError"
        body = outcome.json()
        assert body["errorType"] == "RestoreFailed"
        assert body["errorMessage"] == (
            "after restore: re-seeding random state failed (OSError: getrandom: no entropy available)"
        )
        assert proc.wait(timeout=WAIT_S) == 65  # awslambdaric's exit code for an after-restore failure
    finally:
        stop(proc)


# --- the hooks, in process ---------------------------------------------------------------------------------


@pytest.fixture
def snap_app(app_factory: Any, tiny_bert_dir: Path) -> Iterator[Any]:
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    app = app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir), AWS_LAMBDA_INITIALIZATION_TYPE="snap-start")
    assert [f.__name__ for f, *_ in get_before_snapshot()] == ["before_snapshot"]
    assert [f.__name__ for f, *_ in get_after_restore()] == ["after_restore"]
    yield app
    get_before_snapshot().clear()
    get_after_restore().clear()


def test_hooks_are_registered_only_under_snapstart(app_factory: Any, tiny_bert_dir: Path) -> None:
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir))
    assert get_before_snapshot() == [] and get_after_restore() == []


def test_before_snapshot_sets_the_estimate_from_a_full_window_and_flushes_init_metrics(
    snap_app: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from handler.observability import metrics
    from handler.runtime import snapstart

    service = snap_app.SERVICE
    assert metrics.metric_set  # ModelLoadSeconds, ModelDownloadBytes: recorded at init
    seen: list[int] = []
    predict = service.engine.backend.logits
    service.engine.backend.logits = lambda inputs: (
        seen.append(inputs["input_ids"].shape[1]) or predict(inputs)
    )
    service.budget.ms_per_window = None
    trimmed: list[int] = []
    libc = SimpleNamespace(malloc_trim=trimmed.append)
    monkeypatch.setattr(snapstart.ctypes, "CDLL", lambda name: libc if name == "libc.so.6" else None)
    capsys.readouterr()

    snapstart.before_snapshot(service)

    seq, _ = service.engine.tokenizer.resolve(None, None)
    assert seen == [seq, seq]  # two full-length windows
    assert service.budget.ms_per_window is not None and service.budget.ms_per_window > 0
    assert not metrics.metric_set  # flushed once, at the snapshot, instead of by every restored copy
    assert "ModelLoadSeconds" in capsys.readouterr().out
    assert trimmed == [0]  # freed heap pages handed back before the snapshot copies memory


def test_before_snapshot_leaves_no_s3_client_or_cached_credentials(
    app_factory: Any, s3_bucket: Any, tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import weakref

    import boto3
    from snapshot_restore_py import get_after_restore, get_before_snapshot

    from handler.runtime import snapstart
    from handler.store import warm
    from handler.store.s3 import clients_alive

    publish(str(tiny_bert_dir), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)
    made: list[weakref.ref[Any]] = []
    original = warm.make_client
    monkeypatch.setattr(warm, "make_client", lambda **kw: made.append(weakref.ref(c := original(**kw))) or c)
    boto3.setup_default_session()  # what the store's clients come from, and where credentials are cached
    try:
        app = app_factory(
            MODEL_S3_URI=s3_bucket.uri(PREFIX),
            MODEL_DIR=str(tmp_path),
            AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
        )
        assert app.SERVICE.engine is not None and app.SERVICE.info["store"] == "memory"
        assert len(made) == 1
        snapstart.before_snapshot(app.SERVICE)
        assert boto3.DEFAULT_SESSION is None
        assert [ref() for ref in made] == [None]  # nothing kept the store's client (nor its connection pool)
        assert clients_alive() == 0
    finally:
        get_before_snapshot().clear()
        get_after_restore().clear()


def test_a_failed_model_refuses_the_snapshot(snap_app: Any) -> None:
    from handler.runtime import snapstart
    from handler.service import QAService

    broken = QAService(None, snap_app.SETTINGS, unavailable="the model failed to load at init (AccessDenied)")
    with pytest.raises(snapstart.SnapshotRefused, match=r"AccessDenied.*publish the version again"):
        snapstart.before_snapshot(broken)


def test_every_restored_copy_draws_its_own_random_numbers(snap_app: Any) -> None:
    """Two copies of one snapshot: same state before the hook, different numbers after it."""
    import torch

    from handler.runtime import snapstart

    snapshot = (random.getstate(), np.random.get_state(), torch.random.get_rng_state())
    draws = []
    for _copy in range(2):
        random.setstate(snapshot[0])
        np.random.set_state(snapshot[1])
        torch.random.set_rng_state(snapshot[2])
        snapstart.after_restore(snap_app.SERVICE)
        draws.append((random.random(), float(np.random.random()), float(torch.rand(1))))  # noqa: S311
    assert all(a != b for a, b in zip(*draws, strict=True))


def test_cold_start_means_the_first_request_after_restore(
    snap_app: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    import aws_lambda_powertools.logging.logger as powertools_logger
    from aws_lambda_powertools.metrics.provider import cold_start

    from handler.runtime import snapstart
    from tests.fixtures.events import invoke

    invoke(snap_app, load("direct-single.json"))  # say something ran before the snapshot
    assert cold_start.is_cold_start is False and powertools_logger.is_cold_start is False
    snapstart.before_snapshot(snap_app.SERVICE)
    snapstart.after_restore(snap_app.SERVICE)
    assert cold_start.is_cold_start is True and powertools_logger.is_cold_start is True
    capsys.readouterr()
    for _ in range(3):
        invoke(snap_app, load("direct-single.json"))
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert ["ColdStart" in doc for doc in emf] == [True, False, False, False]  # its own document, then 3
