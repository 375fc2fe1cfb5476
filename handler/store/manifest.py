"""The published model's manifest: which files, their sizes and sha256, and which backend variant needs them.

The manifest is the only thing the warm-up trusts: keys come from it (never from listing the bucket) and are
checked here so that no key can write outside the model directory.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from handler import variants as registry
from handler.store.golden import Golden

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
# Written by the warm-up next to the files it verified; a manifest may not list it.
MARKER_NAME = ".verified.json"
_HASH_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


class ManifestError(ValueError):
    """The manifest is not valid JSON of the expected shape."""


class UnsafeKeyError(ManifestError):
    """A key would escape the model directory or is not a plain relative POSIX path."""


def check_key(key: str) -> str:
    """Return ``key`` if it is a plain relative path (no ``..``, absolute path, backslash or control char)."""
    if not isinstance(key, str) or not key:
        raise UnsafeKeyError(f"key must be a non-empty string, got {key!r}")
    if "\\" in key or key.startswith("/") or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise UnsafeKeyError(f"unsafe key {key!r}: absolute path, backslash or control character")
    parts = key.split("/")
    if any(part in ("", ".", "..") for part in parts) or re.match(r"[A-Za-z]:", key):
        raise UnsafeKeyError(f"unsafe key {key!r}: empty, '.' or '..' component, or a drive letter")
    if key in (MANIFEST_NAME, MARKER_NAME):
        raise UnsafeKeyError(f"unsafe key {key!r}: reserved name")
    return str(PurePosixPath(key))


def variants_for(key: str) -> tuple[str, ...]:
    """The backend variants that need a file: its weights' variant, or all of them (config, tokenizer, ...)."""
    return registry.owner_of(PurePosixPath(key).name)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class FileEntry:
    key: str  # relative to the model's S3 prefix, and to the local model directory
    size: int
    sha256: str
    variants: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "size": self.size, "sha256": self.sha256, "variants": list(self.variants)}

    @classmethod
    def from_dict(cls, raw: Any) -> FileEntry:
        if not isinstance(raw, dict):
            raise ManifestError(f"file entry must be an object, got {raw!r}")
        key = check_key(raw.get("key"))
        size, sha, variants = raw.get("size"), raw.get("sha256"), raw.get("variants")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ManifestError(f"{key}: size must be a non-negative integer, got {size!r}")
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise ManifestError(f"{key}: sha256 must be 64 lowercase hex digits, got {sha!r}")
        if not isinstance(variants, list) or not variants or not set(variants) <= set(registry.NAMES):
            raise ManifestError(f"{key}: variants must be a non-empty subset of {registry.NAMES}")
        return cls(key, size, sha, tuple(sorted(variants)))


@dataclass(frozen=True)
class Manifest:
    """``format_version`` 1: model name and revision, and every file with its key, size, sha256, variants.

    ``fidelity`` (optional, absent in manifests written before it existed): per lossy variant, how its answers
    compared with its reference's at publish (``qa_tools.fidelity``); the function reports it on /health.
    ``golden`` (optional): the reference's answers to those probes, which the function's self-check re-asks.
    """

    name: str
    revision: str
    files: tuple[FileEntry, ...]
    format_version: int = FORMAT_VERSION
    fidelity: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    golden: Golden | None = None  # the reference's answers to the probes (handler.store.golden), if recorded

    @classmethod
    def build(
        cls,
        name: str,
        revision: str,
        paths: Mapping[str, Path],
        fidelity: Mapping[str, Mapping[str, Any]] | None = None,
        golden: Golden | None = None,
    ) -> Manifest:
        """Describe local files by key (hashing them is the slow part of publishing: one pass per byte)."""
        files = [
            FileEntry(
                check_key(key), path.stat().st_size, sha256_file(path), tuple(sorted(variants_for(key)))
            )
            for key, path in sorted(paths.items())
        ]
        return cls(name, revision, tuple(files), fidelity=dict(fidelity or {}), golden=golden)

    def files_for(self, variant: str) -> tuple[FileEntry, ...]:
        return tuple(f for f in self.files if variant in f.variants)

    @property
    def variants(self) -> tuple[str, ...]:
        """Variants the manifest can serve: those whose weight file it lists."""
        weights = {v for f in self.files if len(f.variants) == 1 for v in f.variants}
        return tuple(v for v in registry.NAMES if v in weights)

    def serving(self, variant: str, fallback: str | None) -> str:
        """``variant``, or ``fallback`` (when given) if this manifest cannot serve ``variant``."""
        return fallback if fallback and variant not in self.variants else variant

    def to_json(self) -> bytes:
        """Deterministic bytes (no timestamps): publishing the same files twice yields the same manifest."""
        doc = {
            "format_version": self.format_version,
            "model": {"name": self.name, "revision": self.revision},
            "files": [f.to_dict() for f in self.files],
        }
        if self.fidelity:
            doc["fidelity"] = self.fidelity
        if self.golden is not None:
            doc["golden"] = self.golden.to_dict()
        return (json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            doc = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ManifestError(f"not valid JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ManifestError("top level must be a JSON object")
        version = doc.get("format_version")
        if version != FORMAT_VERSION:
            raise ManifestError(f"unsupported format_version {version!r} (this code reads {FORMAT_VERSION})")
        model, files = doc.get("model"), doc.get("files")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise ManifestError("model must be an object with a string name")
        if not isinstance(files, list) or not files:
            raise ManifestError("files must be a non-empty list")
        entries = tuple(FileEntry.from_dict(f) for f in files)
        keys = [e.key for e in entries]
        if len(set(keys)) != len(keys):
            raise ManifestError("duplicate keys")
        fidelity = doc.get("fidelity", {})
        if not isinstance(fidelity, dict) or not all(
            name in registry.NAMES and isinstance(entry, dict) for name, entry in fidelity.items()
        ):
            raise ManifestError(f"fidelity must map variant names ({', '.join(registry.NAMES)}) to objects")
        try:
            golden = Golden.from_dict(doc["golden"]) if "golden" in doc else None
        except ValueError as exc:
            raise ManifestError(str(exc)) from None
        return cls(model["name"], str(model.get("revision", "")), entries, version, fidelity, golden)
