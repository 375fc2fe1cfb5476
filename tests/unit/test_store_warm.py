"""The model store without S3 (``warm``, ``choice``, ``baked``, ``manifest_fetch``, ``report``): the store
choice, a baked-in model, a cached copy reused, and what a missing or refused manifest is diagnosed as. A
stand-in client answers only what each test needs; the downloads themselves run against a moto S3 in
tests/integration/ (test_store.py, test_store_memory.py, test_store_faults.py)."""

from __future__ import annotations

import dataclasses
import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from handler.store import (
    Manifest,
    ModelStoreError,
    WarmupReport,
    cache,
    choose_store,
    open_baked,
    warm_from_s3,
    warm_model,
)
from handler.store.errors import AccessDenied, InvalidManifest, ManifestMissing, PrefixEmpty, UnsafeKey
from handler.store.manifest import MANIFEST_NAME

URI = "s3://models/qa/"
FILES = {"config.json": b"{}", "tokenizer.json": b'{"t": 1}', "model.onnx": b"graph" * 50}


def error(code: str, status: int, operation: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class Client:
    """``get_object`` / ``list_objects_v2`` over a dict of keys; ``denied`` keys answer 403 as S3 does."""

    def __init__(self, objects: dict[str, bytes], denied: frozenset[str] = frozenset()) -> None:
        self.objects, self.denied, self.calls = objects, denied, []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        self.calls.append(("get", Key))
        if Key in self.denied:
            raise error("AccessDenied", 403, "GetObject")
        if Key not in self.objects:
            raise error("NoSuchKey", 404, "GetObject")
        return {"Body": io.BytesIO(self.objects[Key])}

    def list_objects_v2(self, Bucket: str, Prefix: str, MaxKeys: int) -> dict[str, Any]:
        self.calls.append(("list", Prefix))
        keys = sorted(k for k in self.objects if k.startswith(Prefix))[:MaxKeys]
        return {"Contents": [{"Key": k} for k in keys]} if keys else {}


def published(tmp_path: Path, files: dict[str, bytes] = FILES) -> tuple[Manifest, bytes]:
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    for key, data in files.items():
        (source / key).write_bytes(data)
    manifest = Manifest.build("tiny", "rev1", {k: source / k for k in files})
    return manifest, manifest.to_json()


def client_for(raw: bytes, **extra: bytes) -> Client:
    return Client({f"qa/{MANIFEST_NAME}": raw, **{f"qa/{k}": v for k, v in extra.items()}})


# --- the store choice -------------------------------------------------------------------------------------


def choice(tmp_path: Path, mode: str = "auto", *, snapstart: bool = False) -> tuple[str, str]:
    manifest, raw = published(tmp_path)
    digest = hashlib.sha256(raw).hexdigest()
    root = tmp_path / "models"
    target = cache.entry_dir(root, digest, "onnx-fp32")
    files = manifest.files_for("onnx-fp32")
    return choose_store(mode, snapstart=snapstart, cache_root=root, target=target, digest=digest, files=files)


@pytest.mark.parametrize("mode", ["disk", "memory"])
def test_an_explicit_store_is_taken_as_set(tmp_path: Path, mode: str) -> None:
    assert choice(tmp_path, mode, snapstart=True) == (mode, f"MODEL_STORE={mode}")


def test_auto_is_memory_under_snapstart(tmp_path: Path) -> None:
    store, reason = choice(tmp_path, snapstart=True)
    assert store == "memory" and "SnapStart" in reason


def test_auto_is_memory_without_room_and_disk_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cache, "free_space", lambda _: 1 << 20)
    store, reason = choice(tmp_path)
    assert store == "memory" and "MiB free" in reason
    monkeypatch.setattr(cache, "free_space", lambda _: 1 << 40)
    assert choice(tmp_path)[0] == "disk"


# --- a model baked into the image -------------------------------------------------------------------------


def test_a_plain_model_directory_is_used_as_is(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    report = open_baked(tmp_path, "torch")
    assert (report.store, report.skipped, report.bytes, report.model_dir) == ("image", True, 0, tmp_path)
    assert report.model_name == tmp_path.name and report.files == 0


def test_a_baked_published_copy_is_checked_for_the_variants_files(tmp_path: Path) -> None:
    manifest, raw = published(tmp_path)
    baked = tmp_path / "source"
    (baked / MANIFEST_NAME).write_bytes(raw)
    report = open_baked(baked, "onnx-fp32")
    assert (report.model_name, report.revision, report.files) == (
        "tiny",
        "rev1",
        len(manifest.files_for("onnx-fp32")),
    )
    (baked / "model.onnx").write_bytes(b"short")
    with pytest.raises(ModelStoreError, match=r"missing or truncated for onnx-fp32: \['model.onnx'\]"):
        open_baked(baked, "onnx-fp32")


# --- the manifest, and a cached copy ----------------------------------------------------------------------


def test_a_verified_copy_in_the_cache_is_reused_without_downloading(tmp_path: Path) -> None:
    manifest, raw = published(tmp_path)
    digest = hashlib.sha256(raw).hexdigest()
    files = manifest.files_for("onnx-fp32")
    target = cache.entry_dir(tmp_path / "models", digest, "onnx-fp32")
    target.mkdir(parents=True)
    for entry in files:
        (target / entry.key).write_bytes(FILES[entry.key])
    cache.write_marker(target, raw, digest, files, {f.key: f.sha256 for f in files})
    client = client_for(raw)
    report = warm_model(URI, tmp_path / "models", "onnx-fp32", client=client)  # type: ignore[arg-type]
    assert report.skipped and report.bytes == 0 and report.model_dir == target
    assert report.manifest_sha256 == digest and report.store == "disk"
    assert client.calls == [("get", f"qa/{MANIFEST_NAME}")]  # nothing but the manifest was read


def test_a_variant_the_manifest_lacks_says_how_to_republish(tmp_path: Path) -> None:
    _, raw = published(tmp_path)
    with pytest.raises(InvalidManifest, match=r"no torch weights .* republish with --variants torch"):
        warm_from_s3(URI, tmp_path / "models", "torch", client=client_for(raw))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raw", "kind"),
    [(b"{not json", InvalidManifest), (b'{"format_version": 1, "files": []}', InvalidManifest)],
)
def test_an_unreadable_manifest_is_invalid(tmp_path: Path, raw: bytes, kind: type[Exception]) -> None:
    with pytest.raises(kind, match="re-publish"):
        warm_from_s3(URI, tmp_path, "torch", client=client_for(raw))  # type: ignore[arg-type]


def test_a_manifest_key_outside_the_prefix_is_refused(tmp_path: Path) -> None:
    manifest, _ = published(tmp_path)
    doc = manifest.to_json().replace(b'"config.json"', b'"../config.json"')
    with pytest.raises(UnsafeKey, match="plain relative keys"):
        warm_from_s3(URI, tmp_path, "onnx-fp32", client=client_for(doc))  # type: ignore[arg-type]


def test_an_empty_prefix_says_publish(tmp_path: Path) -> None:
    with pytest.raises(PrefixEmpty, match=r"nothing is published under s3://models/qa/.*publish"):
        warm_from_s3(URI, tmp_path, "torch", client=Client({}))  # type: ignore[arg-type]


def test_objects_without_a_manifest_are_an_interrupted_publish(tmp_path: Path) -> None:
    with pytest.raises(ManifestMissing, match="interrupted"):
        warm_from_s3(URI, tmp_path, "torch", client=Client({"qa/model.onnx": b"x"}))  # type: ignore[arg-type]


def test_a_refused_read_of_an_existing_manifest_names_the_permission(tmp_path: Path) -> None:
    key = f"qa/{MANIFEST_NAME}"
    client = Client({key: b"{}"}, denied=frozenset({key}))
    with pytest.raises(AccessDenied, match=r"s3:GetObject on arn:aws:s3:::models/qa/\*"):
        warm_from_s3(URI, tmp_path, "torch", client=client)  # type: ignore[arg-type]


def test_a_403_for_a_missing_manifest_is_diagnosed_by_listing(tmp_path: Path) -> None:
    """S3 answers 403, not 404, for a missing key when the caller may not list the bucket."""
    client = Client({"qa/other": b"x"}, denied=frozenset({f"qa/{MANIFEST_NAME}"}))
    with pytest.raises(ManifestMissing):
        warm_from_s3(URI, tmp_path, "torch", client=client)  # type: ignore[arg-type]


# --- the report -------------------------------------------------------------------------------------------


def test_the_report_is_keyword_only_and_logs_without_the_model(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    report = open_baked(tmp_path, "torch")
    with pytest.raises(TypeError):
        WarmupReport(*[getattr(report, f.name) for f in dataclasses.fields(report)])  # type: ignore[misc]
    fast = dataclasses.replace(report, bytes=10 << 20, seconds=2.0)
    log = fast.as_log()
    assert "model" not in log and log["model_dir"] == str(tmp_path) and log["mb_per_s"] == 5.0
