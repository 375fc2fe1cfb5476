"""Model store against a local S3 (moto server on 127.0.0.1) with real boto3 clients."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import namedtuple
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient

from handler.engine import QAEngine
from handler.runtime.loader import warm_from_settings
from handler.settings import Settings
from handler.store.baked import open_baked
from handler.store.errors import (
    AccessDenied,
    BucketNotFound,
    DownloadFailed,
    HashMismatch,
    InsufficientStorage,
    InvalidManifest,
    ManifestMissing,
    ModelStoreError,
    ObjectMissing,
    PrefixEmpty,
    UnsafeKey,
    VariantMissing,
)
from handler.store.manifest import MANIFEST_NAME, MARKER_NAME, Manifest
from handler.store.s3 import make_client
from handler.store.warm import warm_from_s3, warm_model
from qa_tools.publish import publish
from qa_tools.tiny_models import PlantedModel
from tests.fixtures.s3 import Bucket, CuttingProxy

PREFIX = "models/tiny/"
TORCH_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_gets(client: BaseClient) -> list[str]:
    """Keys of every GetObject the client sends (a botocore event hook on the real client)."""
    keys: list[str] = []
    client.meta.events.register(
        "before-parameter-build.s3.GetObject", lambda params, **_: keys.append(params["Key"])
    )
    return keys


def cache_entries(cache_root: Path) -> list[str]:
    return sorted(p.name for p in cache_root.iterdir() if p.name != ".lock") if cache_root.exists() else []


@pytest.fixture
def published(s3_bucket: Bucket, tiny_bert_dir: Path) -> str:
    publish(str(tiny_bert_dir), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)
    return s3_bucket.uri(PREFIX)


def test_publish_then_warm_end_to_end(
    s3_bucket: Bucket, planted_roberta: PlantedModel, tmp_path: Path
) -> None:
    uri = s3_bucket.uri(PREFIX)
    publish(str(planted_roberta.path), uri, variants=["torch"], progress=False)

    report = warm_model(uri, tmp_path / "cache", "torch")

    assert not report.skipped
    files = [p for p in planted_roberta.path.iterdir() if p.is_file()]
    assert report.bytes == sum(p.stat().st_size for p in files) > 0
    assert report.files == len(files)
    assert report.model_dir.parent == tmp_path / "cache"
    for path in files:
        assert sha256(report.model_dir / path.name) == sha256(path)
    engine = QAEngine.load(report.model_dir, "torch")
    context = f"The old {planted_roberta.start_word} bridge {planted_roberta.end_word} crosses the river."
    [[best]] = engine.answer([("What crosses the river?", context)])
    assert best.answer == f"{planted_roberta.start_word} bridge {planted_roberta.end_word}"


def test_report_is_loggable(published: str, tmp_path: Path) -> None:
    report = warm_model(published, tmp_path, "torch")
    logged = report.as_log()
    assert json.loads(json.dumps(logged)) == logged
    assert logged["bytes"] == report.bytes and logged["manifest_sha256"] == report.manifest_sha256
    assert report.mb_per_s == pytest.approx(report.bytes / 2**20 / report.seconds)


def test_second_warm_up_skips_the_download(published: str, tmp_path: Path) -> None:
    first = warm_model(published, tmp_path, "torch")
    client = make_client()
    gets = record_gets(client)

    second = warm_model(published, tmp_path, "torch", client=client)

    assert second.skipped and second.bytes == 0
    assert second.model_dir == first.model_dir
    assert gets == [PREFIX + MANIFEST_NAME]


def test_only_the_variants_files_are_downloaded(s3_bucket: Bucket, tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    contents = {
        "config.json": b"{}",
        "tokenizer.json": b"{}",
        "model.safetensors": b"torch weights",
        "model.onnx": b"fp32 graph",
        "model.int8.onnx": b"int8 graph",
    }
    for key, body in contents.items():
        (source / key).write_bytes(body)
        s3_bucket.put(PREFIX + key, body)
    manifest = Manifest.build("m", "r", {key: source / key for key in contents})
    s3_bucket.put(PREFIX + MANIFEST_NAME, manifest.to_json())
    client = make_client()
    gets = record_gets(client)

    report = warm_model(s3_bucket.uri(PREFIX), tmp_path / "cache", "onnx-int8", client=client)

    assert sorted(gets) == sorted(
        PREFIX + k for k in (MANIFEST_NAME, "config.json", "tokenizer.json", "model.int8.onnx")
    )
    assert not (report.model_dir / "model.safetensors").exists()
    assert (report.model_dir / "model.int8.onnx").read_bytes() == b"int8 graph"


def test_a_truncated_cached_file_is_downloaded_again(published: str, tmp_path: Path) -> None:
    first = warm_model(published, tmp_path, "torch")
    weights = first.model_dir / "model.safetensors"
    good = sha256(weights)
    with weights.open("r+b") as f:
        f.truncate(100)

    second = warm_model(published, tmp_path, "torch")

    assert not second.skipped and second.bytes == first.bytes
    assert sha256(weights) == good


def test_a_file_rewritten_after_verification_is_downloaded_again(published: str, tmp_path: Path) -> None:
    first = warm_model(published, tmp_path, "torch")
    weights = first.model_dir / "model.safetensors"
    good, stat = sha256(weights), weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # written a second later

    second = warm_model(published, tmp_path, "torch")

    assert not second.skipped
    assert sha256(weights) == good


def test_rehash_detects_corruption_that_kept_size_and_mtime(published: str, tmp_path: Path) -> None:
    first = warm_model(published, tmp_path, "torch")
    weights = first.model_dir / "model.safetensors"
    good, stat = sha256(weights), weights.stat()
    data = bytearray(weights.read_bytes())
    data[0] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    second = warm_model(published, tmp_path, "torch", rehash_cached=True)

    assert not second.skipped
    assert sha256(weights) == good


def test_a_model_dir_without_marker_is_not_trusted(published: str, tmp_path: Path) -> None:
    first = warm_model(published, tmp_path, "torch")
    (first.model_dir / MARKER_NAME).unlink()

    assert not warm_model(published, tmp_path, "torch").skipped
    assert (first.model_dir / MARKER_NAME).is_file()


def test_leftovers_of_killed_warm_ups_and_old_models_are_removed(published: str, tmp_path: Path) -> None:
    for stale in (".staging-abc123", "0123456789abcdef-torch"):
        (tmp_path / stale).mkdir()
        for name in TORCH_FILES:
            (tmp_path / stale / name).write_text("stale")
    (tmp_path / "unrelated").mkdir()

    report = warm_model(published, tmp_path, "torch")

    assert cache_entries(tmp_path) == sorted([report.model_dir.name, "unrelated"])


def test_interrupted_download_leaves_no_model(
    published: str,
    tmp_path: Path,
    cutting_proxy: Callable[..., CuttingProxy],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    direct = os.environ["AWS_ENDPOINT_URL_S3"]
    proxy = cutting_proxy(cut_after=100_000)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)
    transfer = TransferConfig(num_download_attempts=2, max_concurrency=4)

    with pytest.raises(DownloadFailed, match="failed after retries"):
        warm_model(published, tmp_path, "torch", client=make_client(max_attempts=2), transfer=transfer)

    assert proxy.cut > 0
    assert cache_entries(tmp_path) == []
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", direct)  # the network is back: the next init starts afresh
    report = warm_model(published, tmp_path, "torch")
    assert not report.skipped and cache_entries(tmp_path) == [report.model_dir.name]


# One GET per file, and parallel 16 KiB ranges (out-of-order writes, retries in the middle of a range).
TRANSFERS = {
    "single": TransferConfig(),
    "ranged": TransferConfig(multipart_threshold=16 * 1024, multipart_chunksize=16 * 1024, max_concurrency=8),
}


@pytest.mark.parametrize("transfer", TRANSFERS.values(), ids=TRANSFERS.keys())
def test_a_cut_connection_is_retried_and_the_result_verified(
    published: str,
    tiny_bert_dir: Path,
    tmp_path: Path,
    cutting_proxy: Callable[..., CuttingProxy],
    monkeypatch: pytest.MonkeyPatch,
    transfer: TransferConfig,
) -> None:
    proxy = cutting_proxy(cut_after=100_000, cuts=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)

    report = warm_model(published, tmp_path, "torch", client=make_client(), transfer=transfer)

    assert proxy.cut == 1
    assert sha256(report.model_dir / "model.safetensors") == sha256(tiny_bert_dir / "model.safetensors")


@pytest.mark.parametrize(
    "key",
    ["../escape.json", "/etc/escape.json", "a/../../escape.json", "a\\..\\escape.json", "./x", "a//b", ""],
)
def test_keys_escaping_the_model_directory_are_refused(s3_bucket: Bucket, tmp_path: Path, key: str) -> None:
    entry = {"key": key, "size": 2, "sha256": hashlib.sha256(b"{}").hexdigest(), "variants": ["torch"]}
    weights = {"key": "model.safetensors", "size": 2, "sha256": entry["sha256"], "variants": ["torch"]}
    doc = {"format_version": 1, "model": {"name": "m", "revision": "r"}, "files": [entry, weights]}
    s3_bucket.put(PREFIX + MANIFEST_NAME, json.dumps(doc).encode())
    client = make_client()
    gets = record_gets(client)

    with pytest.raises(UnsafeKey, match="refused"):
        warm_model(s3_bucket.uri(PREFIX), tmp_path / "cache", "torch", client=client)

    assert gets == [PREFIX + MANIFEST_NAME]
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_missing_bucket(s3_env: object, tmp_path: Path) -> None:
    with pytest.raises(BucketNotFound, match="no-such-bucket-here"):
        warm_model("s3://no-such-bucket-here/models/", tmp_path, "torch")


def test_empty_prefix(s3_bucket: Bucket, tmp_path: Path) -> None:
    with pytest.raises(PrefixEmpty, match="nothing is published"):
        warm_model(s3_bucket.uri("nothing/here/"), tmp_path, "torch")


def test_objects_without_manifest(s3_bucket: Bucket, tmp_path: Path) -> None:
    s3_bucket.put(PREFIX + "config.json", b"{}")
    with pytest.raises(ManifestMissing, match=r"manifest\.json is missing"):
        warm_model(s3_bucket.uri(PREFIX), tmp_path, "torch")


def deny(client: BaseClient, operation: str) -> list[str]:
    """Makes S3 answer 403 AccessDenied to every ``operation`` call of this real client; returns the log."""
    denied: list[str] = []
    body = b"<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>"

    def refuse(request: object, **_: object) -> AWSResponse:
        denied.append(operation)
        return AWSResponse(getattr(request, "url", ""), 403, {}, _Body(body))

    client.meta.events.register(f"before-send.s3.{operation}", refuse)
    return denied


# Without s3:ListBucket on the whole bucket, S3 answers a GetObject of a missing key with 403, not 404.
def test_a_missing_manifest_answered_with_403_is_reported_as_missing(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    s3_bucket.put(PREFIX + "config.json", b"{}")
    client = make_client()
    denied = deny(client, "GetObject")
    with pytest.raises(ManifestMissing, match=r"manifest\.json is missing"):
        warm_model(s3_bucket.uri(PREFIX), tmp_path, "torch", client=client)
    assert denied == ["GetObject"]


def test_an_empty_prefix_answered_with_403_is_reported_as_empty(s3_bucket: Bucket, tmp_path: Path) -> None:
    s3_bucket.put("elsewhere/" + MANIFEST_NAME, b"{}")
    client = make_client()
    deny(client, "GetObject")
    with pytest.raises(PrefixEmpty, match="nothing is published"):
        warm_model(s3_bucket.uri(PREFIX), tmp_path, "torch", client=client)


def test_a_manifest_that_exists_but_cannot_be_read_is_access_denied(published: str, tmp_path: Path) -> None:
    client = make_client()
    deny(client, "GetObject")
    with pytest.raises(
        AccessDenied, match=r"manifest\.json \(AccessDenied\) although it exists.*s3:GetObject"
    ):
        warm_model(published, tmp_path, "torch", client=client)
    assert cache_entries(tmp_path) == []


def test_a_refused_read_and_a_refused_listing_are_access_denied(published: str, tmp_path: Path) -> None:
    client = make_client()
    gets, lists = deny(client, "GetObject"), deny(client, "ListObjectsV2")
    with pytest.raises(AccessDenied, match=r"s3:GetObject .* and s3:ListBucket"):
        warm_model(published, tmp_path, "torch", client=client)
    assert (gets, lists) == (["GetObject"], ["ListObjectsV2"])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b'{"format_version": 2, "model": {"name": "m"}, "files": []}', "unsupported format_version"),
        (b'{"format_version": 1, "model": {"name": "m"}, "files": []}', "non-empty list"),
        (b'{"format_version": 1, "model": {"name": "m"}, "files": [{"key": "a", "size": -1}]}', "size"),
    ],
)
def test_invalid_manifest(s3_bucket: Bucket, tmp_path: Path, body: bytes, reason: str) -> None:
    s3_bucket.put(PREFIX + MANIFEST_NAME, body)
    with pytest.raises(InvalidManifest, match=reason):
        warm_model(s3_bucket.uri(PREFIX), tmp_path, "torch")


def test_a_variant_that_was_not_published(published: str, tmp_path: Path) -> None:
    with pytest.raises(InvalidManifest, match="--variants onnx-int8"):
        warm_model(published, tmp_path, "onnx-int8")


def test_the_cpus_choice_falls_back_to_a_published_variant(published: str, tmp_path: Path) -> None:
    """QA_ONNX_PRECISION=auto on an older manifest: the default serves instead of a failed init."""
    report = warm_from_s3(published, tmp_path, "onnx-int8-qgemm", fallback="torch")
    assert report.variant == "torch" and (report.model_dir / "model.safetensors").is_file()
    assert not list(report.model_dir.glob("*.onnx"))
    kept = warm_from_s3(published, tmp_path / "again", "torch", fallback="onnx-int8")
    assert kept.variant == "torch"  # a published choice is served: the fallback is only for its absence


def test_a_baked_directory_without_the_cpus_choice_serves_the_fallback(
    published: str, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    assert (
        open_baked(tiny_bert_dir, "onnx-int8-qgemm", fallback="torch").variant == "torch"
    )  # plain directory
    copy = warm_model(published, tmp_path, "torch").model_dir  # a published copy: its manifest decides
    assert open_baked(copy, "onnx-int8-qgemm", fallback="torch").variant == "torch"
    with pytest.raises(VariantMissing):
        open_baked(tiny_bert_dir, "onnx-int8-qgemm")


@pytest.mark.parametrize("change", ["same size", "truncated", "longer"])
def test_hash_mismatch(
    published: str, s3_bucket: Bucket, tiny_bert_dir: Path, tmp_path: Path, change: str
) -> None:
    data = bytearray((tiny_bert_dir / "model.safetensors").read_bytes())
    if change == "same size":
        data[len(data) // 2] ^= 0xFF
    body = {"same size": bytes(data), "truncated": bytes(data[:-10]), "longer": bytes(data) + b"x"}[change]
    s3_bucket.put(PREFIX + "model.safetensors", body)  # replaced after the manifest was written

    with pytest.raises(HashMismatch, match=r"model\.safetensors"):
        warm_model(published, tmp_path, "torch")

    assert cache_entries(tmp_path) == []


def test_a_listed_object_missing_from_the_bucket(published: str, s3_bucket: Bucket, tmp_path: Path) -> None:
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=PREFIX + "tokenizer.json")
    with pytest.raises(ObjectMissing, match=r"tokenizer\.json"):
        warm_model(published, tmp_path, "torch")
    assert cache_entries(tmp_path) == []


def test_too_little_space_is_detected_before_downloading(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(512 * 2**20, 510 * 2**20, 2 * 2**20))
    client = make_client()
    gets = record_gets(client)

    with pytest.raises(InsufficientStorage, match=r"EphemeralStorage Size to at least 1024 MB"):
        warm_model(published, tmp_path, "torch", client=client)

    assert gets == [PREFIX + MANIFEST_NAME]
    assert cache_entries(tmp_path) == []


def test_unreachable_endpoint(s3_env: object, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", f"http://127.0.0.1:{port}")
    with pytest.raises(DownloadFailed, match=f"127.0.0.1:{port}"):
        warm_model("s3://bucket/prefix/", tmp_path, "torch", client=make_client(max_attempts=1))


def test_settings_with_a_baked_in_model(tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_LOCAL_PATH", str(tiny_bert_dir))
    monkeypatch.delenv("MODEL_S3_URI", raising=False)
    report = warm_from_settings(Settings.from_env())
    assert report.model_dir == tiny_bert_dir and report.skipped and report.bytes == 0


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_an_onnx_variant_on_a_plain_model_directory_names_the_file_and_the_command(
    tiny_bert_dir: Path, monkeypatch: pytest.MonkeyPatch, precision: str
) -> None:
    monkeypatch.setenv("MODEL_LOCAL_PATH", str(tiny_bert_dir))
    monkeypatch.setenv("QA_BACKEND", "onnx")
    monkeypatch.setenv("QA_ONNX_PRECISION", precision)
    variant = Settings.from_env().variant
    with pytest.raises(VariantMissing) as raised:
        warm_from_settings(Settings.from_env())
    message = str(raised.value)
    assert f"has no {variant.weight_file}" in message and not (tiny_bert_dir / variant.weight_file).exists()
    assert f"`python -m qa_tools.publish {tiny_bert_dir} DIR --variants {variant.name}`" in message


def test_settings_with_a_baked_in_copy_missing_the_weights(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "baked"
    shutil.copytree(warm_model(published, tmp_path / "cache", "torch").model_dir, copy)
    (copy / "model.safetensors").unlink()
    monkeypatch.setenv("MODEL_LOCAL_PATH", str(copy))
    with pytest.raises(ModelStoreError, match=r"model\.safetensors"):
        warm_from_settings(Settings.from_env())


def test_settings_with_s3(published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MODEL_LOCAL_PATH", raising=False)
    monkeypatch.setenv("MODEL_S3_URI", published)
    monkeypatch.setenv("MODEL_DIR", str(tmp_path))
    report = warm_from_settings(Settings.from_env())
    assert report.source == published and report.model_dir.parent == tmp_path and not report.skipped


class _Body:
    """The raw stream botocore reads an injected response from."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: object) -> Iterator[bytes]:
        yield self._data


def test_throttling_is_retried_with_backoff(published: str, tmp_path: Path) -> None:
    client = make_client()
    sent: list[int] = []
    slow_down = b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"

    def throttle_twice(request: object, **_: object) -> AWSResponse | None:
        sent.append(1)
        if len(sent) <= 2:  # S3's answer to too many requests; botocore must back off and retry
            return AWSResponse(getattr(request, "url", ""), 503, {}, _Body(slow_down))
        return None

    client.meta.events.register("before-send.s3.GetObject", throttle_twice)
    report = warm_model(published, tmp_path, "torch", client=client)

    assert not report.skipped and len(sent) == 2 + 1 + len(TORCH_FILES)


def test_warm_up_is_logged_with_bytes_seconds_and_throughput(
    published: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO):
        report = warm_model(published, tmp_path, "torch")
    [record] = [r for r in caplog.records if r.getMessage() == "model warm-up"]
    assert (record.bytes, record.seconds, record.mb_per_s) == (
        report.bytes,
        round(report.seconds, 3),
        round(report.mb_per_s, 1),
    )
