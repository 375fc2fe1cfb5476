"""Every environment variable the function reads, its default and its validation, in one place."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from handler.errors import ConfigurationError

BACKEND_VARIANTS = ("torch", "onnx-fp32", "onnx-int8")


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    return value


@dataclass(frozen=True)
class Settings:
    model_s3_uri: (
        str  # MODEL_S3_URI: s3://bucket/prefix/ of a model published with `python -m handler.publish`
    )
    model_dir: (
        Path  # MODEL_DIR: local cache root for models downloaded from S3 (Lambda: only /tmp is writable)
    )
    model_local_path: Path | None  # MODEL_LOCAL_PATH: a model directory baked into the image (no S3)
    backend: (
        str  # QA_BACKEND (torch | onnx) + QA_ONNX_PRECISION (int8 | fp32) -> torch | onnx-fp32 | onnx-int8
    )
    max_body_bytes: int
    max_context_chars: int
    max_batch_size: int
    max_windows: int
    max_batch_windows: int

    @classmethod
    def from_env(cls) -> Settings:
        backend = os.environ.get("QA_BACKEND", "torch").strip().lower() or "torch"
        if backend == "onnx":
            precision = os.environ.get("QA_ONNX_PRECISION", "int8").strip().lower() or "int8"
            if precision not in ("int8", "fp32"):
                raise ConfigurationError(f"QA_ONNX_PRECISION must be int8 or fp32, got {precision!r}")
            backend = f"onnx-{precision}"
        if backend not in BACKEND_VARIANTS:
            raise ConfigurationError(f"QA_BACKEND must be torch or onnx, got {backend!r}")
        uri = os.environ.get("MODEL_S3_URI", "").strip()
        local = os.environ.get("MODEL_LOCAL_PATH", "").strip()
        if not uri and not local:
            raise ConfigurationError(
                "set MODEL_S3_URI (s3://bucket/prefix/) or MODEL_LOCAL_PATH (a model directory)"
            )
        return cls(
            model_s3_uri=uri,
            model_dir=Path(os.environ.get("MODEL_DIR", "").strip() or "/tmp/models"),  # noqa: S108 - Lambda's only writable dir  # nosec B108
            model_local_path=Path(local) if local else None,
            backend=backend,
            max_body_bytes=_int("MAX_BODY_BYTES", 1_000_000),
            max_context_chars=_int("MAX_CONTEXT_CHARS", 100_000),
            max_batch_size=_int("MAX_BATCH_SIZE", 32),
            max_windows=_int("MAX_WINDOWS", 64),
            max_batch_windows=_int("MAX_BATCH_WINDOWS", 8),
        )
