"""The manifest: the only thing a warm-up trusts, so every key and field is checked before use."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from handler import variants
from handler.store.manifest import (
    MANIFEST_NAME,
    MARKER_NAME,
    Manifest,
    ManifestError,
    UnsafeKeyError,
    check_key,
)

SHA = "0" * 64


@pytest.fixture
def model_files(tmp_path: Path) -> dict[str, Path]:
    files = {
        "config.json": b"{}",
        "tokenizer.json": b"{}",
        "model.safetensors": b"w" * 10,
        "model.int8.onnx": b"q",
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: tmp_path / name for name in files}


def test_build_hashes_files_and_assigns_variants(model_files: dict[str, Path]) -> None:
    manifest = Manifest.build("m", "rev", model_files)
    by_key = {f.key: f for f in manifest.files}
    assert by_key["model.safetensors"].size == 10 and len(by_key["model.safetensors"].sha256) == 64
    assert by_key["model.safetensors"].variants == ("torch",)
    assert by_key["config.json"].variants == variants.NAMES  # not a weight file: every variant reads it
    assert manifest.variants == ("onnx-int8", "torch")  # those whose weights it lists
    assert {f.key for f in manifest.files_for("onnx-int8")} == {
        "config.json",
        "tokenizer.json",
        "model.int8.onnx",
    }


def test_json_round_trip_is_deterministic(model_files: dict[str, Path]) -> None:
    manifest = Manifest.build("m", "rev", model_files)
    data = manifest.to_json()
    assert Manifest.from_json(data) == manifest
    assert Manifest.build("m", "rev", dict(reversed(model_files.items()))).to_json() == data
    assert "fidelity" not in json.loads(data)  # written only when measured: older readers see the same bytes


def test_fidelity_figures_round_trip(model_files: dict[str, Path]) -> None:
    figures = {"onnx-int8": {"reference": "onnx-fp32", "share": 0.98, "passed": True}}
    manifest = Manifest.build("m", "rev", model_files, figures)
    again = Manifest.from_json(manifest.to_json())
    assert again.fidelity == figures and again == manifest


@pytest.mark.parametrize(
    "key",
    [
        "../x",
        "/etc/passwd",
        "a/../../b",
        "a\\b",
        "a//b",
        "./a",
        "C:x",
        "a\nb",
        MANIFEST_NAME,
        MARKER_NAME,
        "",
    ],
)
def test_unsafe_keys_are_refused(key: str) -> None:
    with pytest.raises(UnsafeKeyError):
        check_key(key)


@pytest.mark.parametrize("key", ["model.safetensors", "onnx/model.onnx", "tokenizer_config.json"])
def test_plain_relative_keys_pass(key: str) -> None:
    assert check_key(key) == key


def doc(**overrides: object) -> bytes:
    entry = {"key": "config.json", "size": 2, "sha256": SHA, "variants": ["torch"]}
    base = {"format_version": 1, "model": {"name": "m", "revision": "r"}, "files": [entry]}
    return json.dumps({**base, **overrides}).encode()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"not json", "not valid JSON"),
        (b"[]", "top level must be a JSON object"),
        (doc(format_version=2), "unsupported format_version 2"),
        (doc(model="m"), "model must be an object"),
        (doc(files=[]), "files must be a non-empty list"),
        (doc(files=[{"key": "a", "size": -1, "sha256": SHA, "variants": ["torch"]}]), "size must be"),
        (doc(files=[{"key": "a", "size": 1, "sha256": "abc", "variants": ["torch"]}]), "sha256 must be"),
        (doc(files=[{"key": "a", "size": 1, "sha256": SHA, "variants": ["tf"]}]), "variants must be"),
        (doc(files=[{"key": "a", "size": 1, "sha256": SHA, "variants": ["torch"]}] * 2), "duplicate keys"),
        (doc(fidelity={"onnx-int4": {}}), "fidelity must map variant names"),
        (doc(fidelity={"onnx-int8": 0.9}), "fidelity must map variant names"),
        (doc(fidelity=[]), "fidelity must map variant names"),
    ],
)
def test_invalid_manifests_say_why(data: bytes, reason: str) -> None:
    with pytest.raises(ManifestError, match=reason):
        Manifest.from_json(data)
