"""The publish CLI against a local S3 (moto server on 127.0.0.1) with real boto3 clients."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from botocore.client import BaseClient

from handler.engine import QAEngine
from handler.store.manifest import MANIFEST_NAME, Manifest
from handler.store.s3 import make_client
from handler.store.warm import warm_model
from handler.variants import NAMES as VARIANT_NAMES
from handler.variants import get as get_variant
from qa_tools.fidelity import gate, golden
from qa_tools.publish import SHA256_METADATA, main, publish
from tests.fixtures import ROOT
from tests.fixtures.events import assert_answer, load
from tests.fixtures.lambda_env import FakeContext
from tests.fixtures.s3 import Bucket

PREFIX = "models/tiny/"


def record_uploads(client: BaseClient) -> list[str]:
    """Keys of every PutObject / CreateMultipartUpload the client sends (a botocore event hook)."""
    keys: list[str] = []
    for operation in ("PutObject", "CreateMultipartUpload"):
        client.meta.events.register(
            f"before-parameter-build.s3.{operation}", lambda params, **_: keys.append(params["Key"])
        )
    return keys


def bucket_manifest(bucket: Bucket) -> Manifest:
    body = bucket.client.get_object(Bucket=bucket.name, Key=PREFIX + MANIFEST_NAME)["Body"].read()
    return Manifest.from_json(body)


@pytest.fixture
def model_copy(tiny_bert_dir: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_bert_dir, tmp_path / "model"))


def test_manifest_describes_every_file_and_goes_up_last(s3_bucket: Bucket, tiny_bert_dir: Path) -> None:
    client = make_client()
    present_when_manifest_written: list[list[str]] = []

    def on_put(params: dict, **_: object) -> None:
        if params["Key"].endswith(MANIFEST_NAME):
            present_when_manifest_written.append(s3_bucket.object_keys())

    client.meta.events.register("before-parameter-build.s3.PutObject", on_put)
    result = publish(
        str(tiny_bert_dir), s3_bucket.uri(PREFIX), variants=["torch"], client=client, progress=False
    )

    local = sorted(p.name for p in tiny_bert_dir.iterdir() if p.is_file())
    [present] = present_when_manifest_written
    assert sorted(present) == [PREFIX + name for name in local]
    manifest = bucket_manifest(s3_bucket)
    assert manifest == result.manifest
    assert (manifest.name, manifest.revision) == (tiny_bert_dir.name, "local")
    assert [f.key for f in manifest.files] == local
    for entry in manifest.files:
        data = (tiny_bert_dir / entry.key).read_bytes()
        assert (entry.size, entry.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        expected = ("torch",) if entry.key == "model.safetensors" else tuple(sorted(VARIANT_NAMES))
        assert entry.variants == expected
        head = s3_bucket.client.head_object(Bucket=s3_bucket.name, Key=PREFIX + entry.key)
        assert head["Metadata"][SHA256_METADATA] == entry.sha256


def test_republishing_the_same_files_uploads_nothing(s3_bucket: Bucket, tiny_bert_dir: Path) -> None:
    uri = s3_bucket.uri(PREFIX)
    first = publish(str(tiny_bert_dir), uri, variants=["torch"], progress=False)
    client = make_client()
    uploads = record_uploads(client)

    second = publish(str(tiny_bert_dir), uri, variants=["torch"], client=client, progress=False)

    assert uploads == []
    assert second.uploaded == () and not second.manifest_uploaded
    assert second.skipped == tuple(f.key for f in first.manifest.files)


def test_an_interrupted_publish_resumes_with_the_missing_files(
    s3_bucket: Bucket, tiny_bert_dir: Path
) -> None:
    uri = s3_bucket.uri(PREFIX)
    publish(str(tiny_bert_dir), uri, variants=["torch"], progress=False)
    for key in (MANIFEST_NAME, "model.safetensors"):  # stopped before these went up
        s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=PREFIX + key)

    result = publish(str(tiny_bert_dir), uri, variants=["torch"], progress=False)

    assert result.uploaded == ("model.safetensors",) and result.manifest_uploaded
    assert bucket_manifest(s3_bucket) == result.manifest


def test_a_changed_file_is_uploaded_and_warm_ups_see_the_new_model(
    s3_bucket: Bucket, model_copy: Path, tmp_path: Path
) -> None:
    uri = s3_bucket.uri(PREFIX)
    publish(str(model_copy), uri, variants=["torch"], progress=False)
    before = warm_model(uri, tmp_path / "cache", "torch")
    config = json.loads((model_copy / "tokenizer_config.json").read_text())
    (model_copy / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 256}))

    result = publish(str(model_copy), uri, variants=["torch"], progress=False)
    after = warm_model(uri, tmp_path / "cache", "torch")

    assert result.uploaded == ("tokenizer_config.json",) and result.manifest_uploaded
    assert after.manifest_sha256 != before.manifest_sha256 and not after.skipped
    assert json.loads((after.model_dir / "tokenizer_config.json").read_text())["model_max_length"] == 256
    assert not before.model_dir.exists()  # the old copy was dropped: one model per cache


def test_a_source_without_safetensors_or_tokenizer_json_is_normalised(
    s3_bucket: Bucket, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    import torch
    from safetensors.torch import load_file
    from tokenizers import Tokenizer

    legacy = tmp_path / "legacy"  # what older Hub models look like: pickled weights, vocab.txt only
    legacy.mkdir()
    shutil.copy(tiny_bert_dir / "config.json", legacy)
    state = load_file(tiny_bert_dir / "model.safetensors")
    torch.save(state, legacy / "pytorch_model.bin")
    vocab = Tokenizer.from_file(str(tiny_bert_dir / "tokenizer.json")).get_vocab()
    (legacy / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.__getitem__)) + "\n")
    (legacy / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "BertTokenizer"}))
    (legacy / "training_args.bin").write_bytes(b"not needed at runtime")

    result = publish(str(legacy), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)

    keys = {f.key for f in result.manifest.files}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= keys
    assert not keys & {"pytorch_model.bin", "training_args.bin"}
    report = warm_model(s3_bucket.uri(PREFIX), tmp_path / "cache", "torch")
    published = load_file(report.model_dir / "model.safetensors")
    assert published.keys() == state.keys()
    assert all(torch.equal(published[name], state[name]) for name in state)
    [[answer]] = QAEngine.load(report.model_dir).answer([("Which city?", "Paris is a city in France.")])
    assert answer.answer == "Paris is a city in France."[answer.start : answer.end]


def fake_builders(calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for qa_tools.export and qa_tools.quantize (torch, onnx): builders that write the files the
    variants name, and a fidelity gate that passes them all (it is tested on real graphs below)."""

    def builder(variant: str) -> Any:
        def build(model_dir: Path, out_dir: Path) -> Path:
            calls.append(variant)
            out_dir.mkdir(parents=True, exist_ok=True)
            path = out_dir / get_variant(variant).weight_file
            path.write_bytes(
                f"{variant} graph of ".encode() + (model_dir / "model.safetensors").read_bytes()[:16]
            )
            return path

        return build

    monkeypatch.setitem(
        sys.modules, "qa_tools.export", types.SimpleNamespace(build_fp32=builder("onnx-fp32"))
    )
    fake_quantize = types.SimpleNamespace(
        build_int8=builder("onnx-int8"),
        build_int8_fast=builder("onnx-int8-fast"),
        build_int8_qgemm=builder("onnx-int8-qgemm"),
    )
    monkeypatch.setitem(sys.modules, "qa_tools.quantize", fake_quantize)

    def measure(model_dir: Path, names: list[str], *, threshold: float, **_: Any) -> dict[str, gate.Fidelity]:
        return {
            v.name: gate.Fidelity(v.name, str(v.reference), "p@0", 10, 10, threshold)
            for v in gate.lossy(names)
        }

    monkeypatch.setattr(gate, "measure", measure)
    monkeypatch.setattr(golden, "record", lambda model_dir, reference, threshold: None)  # no real graph here


@pytest.mark.parametrize(
    ("variants", "built", "weights"),
    [
        (["onnx-int8"], ["onnx-int8", "onnx-fp32"], {"model.int8.onnx"}),  # fp32: the gate's reference
        (["onnx-fp32"], ["onnx-fp32"], {"model.onnx"}),
        (
            list(VARIANT_NAMES),
            ["onnx-fp32", "onnx-int8", "onnx-int8-fast", "onnx-int8-qgemm"],
            {
                "model.safetensors",
                "model.onnx",
                "model.int8.onnx",
                "model.int8-fast.onnx",
                "model.int8-qgemm.onnx",
            },
        ),
    ],
)
def test_onnx_variants_are_exported_and_each_weight_file_serves_one_variant(
    s3_bucket: Bucket,
    model_copy: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    variants: list[str],
    built: list[str],
    weights: set[str],
) -> None:
    calls: list[str] = []
    fake_builders(calls, monkeypatch)
    (model_copy / "model.onnx").write_bytes(b"stale export in the source")  # never copied, always re-exported

    result = publish(str(model_copy), s3_bucket.uri(PREFIX), variants=variants, progress=False)

    assert calls == built
    assert set(result.manifest.fidelity) == {v for v in variants if get_variant(v).reference}
    published = {f.key: f.variants for f in result.manifest.files}
    assert {k for k, v in published.items() if len(v) == 1} == weights
    assert set(result.manifest.variants) == set(variants)
    for variant in variants:
        report = warm_model(s3_bucket.uri(PREFIX), tmp_path / variant, variant)
        local = {p.name for p in report.model_dir.iterdir() if not p.name.startswith(".")}
        assert local & weights == {k for k in weights if published[k] == (variant,)}


def test_missing_export_module_gives_a_clear_error(
    s3_bucket: Bucket, tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "qa_tools.quantize", None)  # import fails like an absent module
    with pytest.raises(ValueError, match="--variants torch"):
        publish(str(tiny_bert_dir), s3_bucket.uri(PREFIX), variants=["onnx-int8"], progress=False)
    assert s3_bucket.object_keys() == []


def test_cli_prints_a_summary(
    s3_bucket: Bucket, tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        str(tiny_bert_dir),
        s3_bucket.uri(PREFIX),
        "--variants",
        "torch",
        "--name",
        "tiny",
        "--no-progress",
    ]

    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(argv) == 0
    second = json.loads(capsys.readouterr().out)

    assert first["model"] == "tiny" and first["variants"] == ["torch"] and first["manifest"] == "uploaded"
    assert sorted(first["uploaded"]) == sorted(p.name for p in tiny_bert_dir.iterdir() if p.is_file())
    assert second["uploaded"] == [] and second["manifest"] == "unchanged"
    assert sorted(second["skipped"]) == sorted(first["uploaded"])


def test_cli_rejects_an_unknown_variant(tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_bert_dir), "s3://bucket/prefix/", "--variants", "tensorflow"]) == 2
    assert "variants must be" in capsys.readouterr().err


def test_cli_rejects_a_source_that_is_neither_dir_nor_hub_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path / "no" / "such" / "dir"), "s3://bucket/prefix/"]) == 2
    assert "neither a model directory" in capsys.readouterr().err


def test_cli_rejects_a_directory_that_is_not_a_model_before_loading_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "events").mkdir()
    (tmp_path / "events" / "rest-predict.json").write_text("{}")  # no config.json: no tokenizer to build
    assert main([str(tmp_path / "events"), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'events'} is not a model directory (no config.json)")
    assert "sentencepiece" not in err and "tokenizer" not in err


def test_cli_rejects_a_bad_uri(tiny_bert_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tiny_bert_dir), "https://bucket/prefix/", "--variants", "torch"]) == 2
    assert "s3://bucket/prefix/" in capsys.readouterr().err


def test_runs_as_a_module_with_the_standard_endpoint_variable(s3_bucket: Bucket, tiny_bert_dir: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "qa_tools.publish",
        str(tiny_bert_dir),
        s3_bucket.uri(PREFIX),
        "--variants",
        "torch",
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["manifest"] == "uploaded"
    assert PREFIX + MANIFEST_NAME in s3_bucket.object_keys()


def test_a_warmed_copy_can_be_republished_elsewhere(
    s3_bucket: Bucket, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    first = publish(str(tiny_bert_dir), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)
    warmed = warm_model(
        s3_bucket.uri(PREFIX), tmp_path, "torch"
    ).model_dir  # holds manifest.json, .verified.json

    second = publish(
        str(warmed), s3_bucket.uri("copy/"), variants=["torch"], name=first.manifest.name, progress=False
    )

    assert second.manifest.files == first.manifest.files


# --- a local directory as the destination ------------------------------------------------------------
def test_publishes_into_a_local_directory_the_function_serves(
    tiny_bert_dir: Path, tmp_path: Path, app_factory: Any
) -> None:
    target = tmp_path / "published"
    result = publish(str(tiny_bert_dir), str(target), variants=["torch"], progress=False)

    written = sorted(p.name for p in target.iterdir())
    assert written == sorted([*(f.key for f in result.manifest.files), MANIFEST_NAME])
    assert Manifest.from_json((target / MANIFEST_NAME).read_bytes()) == result.manifest
    assert [p.name for p in tmp_path.iterdir()] == ["published"]  # no staging left beside it
    app = app_factory(MODEL_LOCAL_PATH=str(target))
    assert app.SERVICE.engine is not None
    event = load("direct-single.json")
    assert_answer(app.lambda_handler(event, FakeContext()), event["context"])

    (target / "model.safetensors").write_bytes(b"truncated")  # the manifest catches a damaged copy
    assert app_factory(MODEL_LOCAL_PATH=str(target)).SERVICE.engine is None


def test_a_local_onnx_publish_serves_with_the_onnx_backend(
    tiny_bert_dir: Path, tmp_path: Path, app_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "onnx"
    publish(str(tiny_bert_dir), str(target), variants=["onnx-fp32"], progress=False)
    assert (
        "left out model.safetensors: only torch reads it, and this publish is onnx-fp32"
        in capsys.readouterr().err
    )
    assert "model.safetensors" not in {p.name for p in target.iterdir()}

    app = app_factory(MODEL_LOCAL_PATH=str(target), QA_BACKEND="onnx", QA_ONNX_PRECISION="fp32")
    assert app.SERVICE.health()["backend"] == "onnx-fp32"
    event = load("direct-single.json")
    assert_answer(app.lambda_handler(event, FakeContext()), event["context"])


def test_a_local_publish_replaces_only_an_earlier_publish(tiny_bert_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "model"
    publish(str(tiny_bert_dir), str(target), variants=["torch"], progress=False)
    (target / "stale.txt").write_text("from before")
    publish(str(tiny_bert_dir), str(target), variants=["torch"], progress=False)
    assert not (target / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["model"]

    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    with pytest.raises(ValueError, match="holds other files"):
        publish(str(tiny_bert_dir), str(other), variants=["torch"], progress=False)
    assert [p.name for p in other.iterdir()] == ["mine.txt"]


def test_cli_publishes_to_a_directory(
    tiny_bert_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "model"
    assert main([str(tiny_bert_dir), str(target), "--variants", "torch", "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["destination"] == str(target) and summary["manifest"] == "uploaded"
    assert (target / MANIFEST_NAME).is_file()


# --- the fidelity gate --------------------------------------------------------------------------------
def test_int8_publish_records_its_fidelity_and_health_reports_it(
    planted_bert: Any, tmp_path: Path, app_factory: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The planted model answers the probes exactly in fp32 and in (faithful) int8: 100 %, recorded and served."""
    target = tmp_path / "onnx"
    result = publish(str(planted_bert.path), str(target), variants=["onnx-int8"])

    entry = result.manifest.fidelity["onnx-int8"]
    _, probes = gate.probe_set()
    answers = 2 * len(probes)  # int8's and its reference's
    err = capsys.readouterr().err  # progress while measuring, on stderr (plain lines: not a terminal)
    assert f"  fidelity probes: 0/{answers} answers (0%)\n" in err
    assert f"  fidelity probes: {answers}/{answers} answers (100%)\n" in err
    assert entry["reference"] == "onnx-fp32" and entry["count"] == len(probes)
    assert entry["same_span"] == len(probes) and entry["passed"] is True
    assert "model.onnx" not in {p.name for p in target.iterdir()}  # measured against, not published
    app = app_factory(MODEL_LOCAL_PATH=str(target), QA_BACKEND="onnx")
    assert app.SERVICE.health()["fidelity"] == entry


def test_health_says_when_fidelity_was_not_measured(
    planted_bert: Any, tmp_path: Path, app_factory: Any
) -> None:
    target = tmp_path / "onnx"
    publish(str(planted_bert.path), str(target), variants=["onnx-fp32", "onnx-int8"], progress=False)
    manifest = json.loads((target / MANIFEST_NAME).read_text())
    del manifest["fidelity"]  # as written before publish measured it
    (target / MANIFEST_NAME).write_text(json.dumps(manifest))

    int8 = app_factory(MODEL_LOCAL_PATH=str(target), QA_BACKEND="onnx").SERVICE.health()
    fp32 = app_factory(
        MODEL_LOCAL_PATH=str(target), QA_BACKEND="onnx", QA_ONNX_PRECISION="fp32"
    ).SERVICE.health()
    assert int8["fidelity"].startswith("not measured") and fp32["fidelity"] is None


def low_fidelity(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lossy variant answers like its reference on 180 of 200 probes."""

    def measure(model_dir: Path, names: list[str], *, threshold: float, **_: Any) -> dict[str, gate.Fidelity]:
        return {
            v.name: gate.Fidelity(v.name, "onnx-fp32", "p@0", 200, 180, threshold) for v in gate.lossy(names)
        }

    monkeypatch.setattr(gate, "measure", measure)
    monkeypatch.setattr(golden, "record", lambda model_dir, reference, threshold: None)  # no real graph here


def test_cli_refuses_a_lossy_variant_below_the_threshold_unless_allowed(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    low_fidelity(monkeypatch)
    target = tmp_path / "model"
    argv = [str(tiny_bert_dir), str(target), "--variants", "onnx-int8-fast", "--no-progress"]

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "onnx-int8-fast answers like onnx-fp32 on 180/200 probes (90.0%" in err and "--allow-lossy" in err
    assert not target.exists()  # refused before anything was written

    assert main([*argv, "--allow-lossy"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["fidelity"]["onnx-int8-fast"]["passed"] is False
    assert (
        Manifest.from_json((target / MANIFEST_NAME).read_bytes()).fidelity["onnx-int8-fast"]["share"] == 0.9
    )

    assert main([*argv, "--min-fidelity", "0.85"]) == 0  # a threshold the caller chose
    assert json.loads(capsys.readouterr().out)["fidelity"]["onnx-int8-fast"]["passed"] is True
    with pytest.raises(SystemExit) as refused:  # argparse's usage error: a percentage, not a share
        main([*argv, "--min-fidelity", "97"])
    assert refused.value.code == 2
    assert "between 0 and 1" in capsys.readouterr().err
