"""The model store's memory mode and MODEL_STORE's choice, against a local S3 (moto on 127.0.0.1).

Memory mode downloads, verifies and loads without writing a byte to MODEL_DIR (SnapStart's /tmp is 512 MB);
these tests check it is as strict as the disk store (same errors, same retries) and leaves nothing behind.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig
from botocore.awsrequest import AWSResponse

from handler.engine import QAEngine
from handler.errors import ConfigurationError
from handler.model_files import MemoryFiles
from handler.runtime.loader import warm_from_settings
from handler.settings import Settings
from handler.store import cache, choose_store, download, memory, warm_into_memory, warm_model
from handler.store.errors import HashMismatch, ObjectMissing
from handler.store.manifest import Manifest
from handler.store.s3 import make_client
from qa_tools.publish import publish
from qa_tools.tiny_models import PlantedModel
from tests.fixtures.s3 import Bucket, CuttingProxy

PREFIX = "models/memory/"
RANGED = TransferConfig(multipart_threshold=16 * 1024, multipart_chunksize=16 * 1024, max_concurrency=8)


@pytest.fixture
def published(s3_bucket: Bucket, planted_roberta: PlantedModel) -> str:
    publish(str(planted_roberta.path), s3_bucket.uri(PREFIX), variants=["torch"], progress=False)
    return s3_bucket.uri(PREFIX)


def settings_for(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in ("MODEL_LOCAL_PATH", "MODEL_STORE", "AWS_LAMBDA_INITIALIZATION_TYPE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return Settings.from_env()


@pytest.mark.parametrize("transfer", [TransferConfig(), RANGED], ids=["single", "ranged"])
def test_memory_mode_holds_the_published_bytes_and_writes_nothing(
    published: str, planted_roberta: PlantedModel, tmp_path: Path, transfer: TransferConfig
) -> None:
    report = warm_into_memory(published, "torch", transfer=transfer)

    assert isinstance(report.model, MemoryFiles) and report.store == "memory" and report.model_dir is None
    local = {p.name: p.read_bytes() for p in planted_roberta.path.iterdir() if p.is_file()}
    assert {k: report.model.read_bytes(k) for k in report.model.file_keys()} == local
    assert report.bytes == report.model.resident_bytes() == sum(map(len, local.values()))
    assert report.as_log()["store"] == "memory" and "model" not in report.as_log()
    [[best]] = QAEngine.load(report.model, "torch").answer(
        [
            (
                "Which animal?",
                f"Here the {planted_roberta.start_word} of old {planted_roberta.end_word} sleeps.",
            )
        ]
    )
    assert best.answer == f"{planted_roberta.start_word} of old {planted_roberta.end_word}"


def test_ranges_are_hashed_as_they_arrive_never_read_again(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Disk and memory alike: with ranges arriving out of order, no file is re-read or re-hashed."""
    monkeypatch.setattr(download, "sha256_file", lambda path: pytest.fail(f"re-hashed {path}"))
    monkeypatch.setattr(os, "pread", lambda *_: pytest.fail("read back"))
    on_disk = warm_model(published, tmp_path / "cache", "torch", transfer=RANGED)
    no_rehash = SimpleNamespace(sha256=lambda *_: pytest.fail("re-hashed in memory"))
    monkeypatch.setattr(memory, "hashlib", no_rehash)
    in_memory = warm_into_memory(published, "torch", transfer=RANGED)
    assert on_disk.model_dir is not None
    for key in in_memory.model.file_keys():
        assert (on_disk.model_dir / key).read_bytes() == in_memory.model.read_bytes(key)


@pytest.mark.parametrize("transfer", [TransferConfig(), RANGED], ids=["single", "ranged"])
def test_a_cut_connection_is_retried_into_memory_and_verified(
    published: str,
    planted_roberta: PlantedModel,
    cutting_proxy: Callable[..., CuttingProxy],
    monkeypatch: pytest.MonkeyPatch,
    transfer: TransferConfig,
) -> None:
    proxy = cutting_proxy(cut_after=60_000, cuts=1)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", proxy.endpoint)

    report = warm_into_memory(published, "torch", client=make_client(), transfer=transfer)

    assert proxy.cut == 1
    weights = (planted_roberta.path / "model.safetensors").read_bytes()
    assert report.model.read_bytes("model.safetensors") == weights


class _EmptyBody(io.BytesIO):
    """What botocore reads a short-circuited response from: nothing."""

    def stream(self, **_: object) -> Iterator[bytes]:
        yield b""


@pytest.mark.parametrize("store", ["disk", "memory"])
def test_a_response_that_lost_its_length_is_fetched_again(
    published: str, planted_roberta: PlantedModel, tmp_path: Path, store: str
) -> None:
    """A GET cut inside its headers: 200 without Content-Length, so its short body raises nothing anywhere.
    The file is fetched once more instead of being reported as changed after publishing."""
    client = make_client()
    damaged: list[str] = []

    def lose_headers_once(request: Any, **_: object) -> AWSResponse | None:
        if request.url.endswith("model.safetensors") and not damaged:
            damaged.append(request.url)
            return AWSResponse(request.url, 200, {}, _EmptyBody())
        return None

    client.meta.events.register("before-send.s3.GetObject", lose_headers_once)
    if store == "memory":
        report = warm_into_memory(published, "torch", client=client)
        got = report.model.read_bytes("model.safetensors")
    else:
        report = warm_model(published, tmp_path, "torch", client=client)
        assert report.model_dir is not None
        got = (report.model_dir / "model.safetensors").read_bytes()
    assert damaged and got == (planted_roberta.path / "model.safetensors").read_bytes()


def test_a_changed_object_is_refused_in_memory_too(
    published: str, s3_bucket: Bucket, planted_roberta: PlantedModel
) -> None:
    data = bytearray((planted_roberta.path / "model.safetensors").read_bytes())
    data[len(data) // 3] ^= 0xFF
    s3_bucket.put(PREFIX + "model.safetensors", bytes(data))
    with pytest.raises(HashMismatch, match=r"model\.safetensors"):
        warm_into_memory(published, "torch", transfer=RANGED)


def test_a_missing_object_is_named_in_memory_too(published: str, s3_bucket: Bucket) -> None:
    s3_bucket.client.delete_object(Bucket=s3_bucket.name, Key=PREFIX + "tokenizer.json")
    with pytest.raises(ObjectMissing, match=r"tokenizer\.json"):
        warm_into_memory(published, "torch")


# --- MODEL_STORE ------------------------------------------------------------------------------------------


def test_model_store_memory_leaves_model_dir_untouched(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "models"
    settings = settings_for(
        monkeypatch, MODEL_S3_URI=published, MODEL_DIR=str(model_dir), MODEL_STORE="memory"
    )
    report = warm_from_settings(settings)
    assert report.store == "memory" and report.reason == "MODEL_STORE=memory"
    assert not model_dir.exists()


def test_auto_under_snapstart_is_memory(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model_dir = tmp_path / "models"
    settings = settings_for(
        monkeypatch,
        MODEL_S3_URI=published,
        MODEL_DIR=str(model_dir),
        AWS_LAMBDA_INITIALIZATION_TYPE="snap-start",
    )
    assert settings.snapstart and settings.model_store == "auto"
    report = warm_from_settings(settings)
    assert report.store == "memory" and "SnapStart" in report.reason
    assert not model_dir.exists()


def test_auto_is_disk_when_there_is_room_and_memory_when_not(
    published: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = settings_for(monkeypatch, MODEL_S3_URI=published, MODEL_DIR=str(tmp_path / "models"))
    assert warm_from_settings(settings).store == "disk"

    monkeypatch.setattr(cache, "free_space", lambda _: 1024)
    cached = warm_from_settings(settings)  # a verified copy is reused whatever the free space
    assert (cached.store, cached.skipped) == ("disk", True)

    elsewhere = settings_for(monkeypatch, MODEL_S3_URI=published, MODEL_DIR=str(tmp_path / "small"))
    report = warm_from_settings(elsewhere)
    assert report.store == "memory" and "MiB free" in report.reason
    assert not (tmp_path / "small").exists()


def test_explicit_disk_is_honoured_under_snapstart(tmp_path: Path, planted_roberta: PlantedModel) -> None:
    files = Manifest.build("m", "", {p.name: p for p in planted_roberta.path.iterdir() if p.is_file()}).files
    kwargs: dict[str, Any] = {
        "cache_root": tmp_path,
        "target": tmp_path / "x",
        "digest": "0" * 64,
        "files": files,
    }
    assert choose_store("disk", snapstart=True, **kwargs)[0] == "disk"
    assert choose_store("memory", snapstart=False, **kwargs)[0] == "memory"
    assert choose_store("auto", snapstart=True, **kwargs)[0] == "memory"
    assert choose_store("auto", snapstart=False, **kwargs)[0] == "disk"


def test_free_space_is_read_without_creating_the_directory(tmp_path: Path) -> None:
    deep = tmp_path / "a" / "b" / "c"
    assert cache.free_space(deep) > 0
    assert not (tmp_path / "a").exists()


def test_a_wrong_model_store_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ConfigurationError, match=r"MODEL_STORE must be one of auto, disk, memory, got 'tmpfs'"
    ):
        settings_for(monkeypatch, MODEL_S3_URI="s3://b/p/", MODEL_STORE="tmpfs")
