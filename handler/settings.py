"""Every environment variable the function reads, its default and its validation, in one place.

A mistake here is a deploy mistake no retry can fix: it raises ``ConfigurationError`` naming the variable, which
fails init (the runtime reports it through /init/error) instead of answering 503 for ever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from handler import answer_cache, variants
from handler.engine.qa import DEFAULT_MAX_BATCH_WINDOWS
from handler.errors import ConfigurationError
from handler.hardware import cpu
from handler.model_files import directory_problem
from handler.store.s3 import S3Location

MODEL_STORES = ("auto", "disk", "memory")
# AWS_LAMBDA_INITIALIZATION_TYPE of a SnapStart init (awslambdaric's INIT_TYPE_SNAP_START)
SNAP_START = "snap-start"
# A batch's answers are the child execution's output, capped at 256 KiB by Step Functions: ~1,000 top-1
# answers with ids. 2,000 windows is ~15 min of roberta-base on 2 vCPUs (Lambda's longest timeout): anything
# larger is a mis-sized batch, refused before any work.
DEFAULT_MAX_BULK_ITEMS = 1000
DEFAULT_MAX_BULK_WINDOWS = 2000


def _str(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def _int(name: str, default: int, minimum: int = 1, maximum: int | None = None) -> int:
    raw = _str(name)
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigurationError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name} must be <= {maximum}, got {value}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _str(name, default).lower()
    if value not in choices:
        raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _variants() -> tuple[variants.Variant, variants.Variant | None]:
    """The variant to serve and, when the CPU chose it, the default it falls back to if the model lacks it."""
    backend = _str("QA_BACKEND", "torch").lower()
    precision = _str(variants.precision_env(backend)).lower() or None
    named = variants.select(backend, precision)  # the default for None and auto
    if precision not in (None, variants.AUTO):
        return named, None
    chosen = variants.select(backend, None, cpu.describe()["int8"])
    return chosen, (named if chosen is not named else None)


def _model_source() -> S3Location | Path:
    uri, local = _str("MODEL_S3_URI"), _str("MODEL_LOCAL_PATH")
    if local:  # a model baked into the image wins over S3
        problem = directory_problem(Path(local))
        if problem:
            raise ConfigurationError(f"MODEL_LOCAL_PATH={local} {problem}")
        return Path(local)
    if not uri:
        raise ConfigurationError(
            "set MODEL_S3_URI (s3://bucket/prefix/) or MODEL_LOCAL_PATH (a model directory)"
        )
    try:
        return S3Location.parse(uri)
    except ValueError as exc:
        raise ConfigurationError(f"MODEL_S3_URI: {exc}") from None


@dataclass(frozen=True)
class Settings:
    # MODEL_LOCAL_PATH (a model directory in the image, no S3) or else MODEL_S3_URI (a published model)
    model_source: S3Location | Path
    model_dir: (
        Path  # MODEL_DIR: local cache root for models downloaded from S3 (Lambda: only /tmp is writable)
    )
    variant: (
        variants.Variant
    )  # QA_BACKEND (torch | onnx) + QA_<BACKEND>_PRECISION (e.g. QA_ONNX_PRECISION=int8)
    max_body_bytes: int  # MAX_BODY_BYTES
    max_context_chars: int  # MAX_CONTEXT_CHARS
    max_batch_size: int  # MAX_BATCH_SIZE
    max_windows: int  # MAX_WINDOWS
    max_batch_windows: int  # MAX_BATCH_WINDOWS
    max_bulk_items: int  # MAX_BULK_ITEMS: items per Distributed Map batch
    max_bulk_windows: int  # MAX_BULK_WINDOWS: windows of all the items of one batch together
    # MODEL_STORE: where a model from S3 is kept -- disk (MODEL_DIR), memory (nothing written), or auto:
    # memory under SnapStart or when MODEL_DIR's filesystem lacks room, else disk (handler.store.choice.choose_store)
    model_store: str = "auto"
    # AWS_LAMBDA_INITIALIZATION_TYPE == "snap-start": init runs once, when a version is published, and
    # environments resume from its snapshot (handler.runtime.snapstart)
    snapstart: bool = False
    # ANSWER_CACHE_ENTRIES (0: off) and ANSWER_CACHE_MB: the per-sandbox answer cache (handler.answer_cache)
    answer_cache_entries: int = answer_cache.DEFAULT_ENTRIES
    answer_cache_mb: int = answer_cache.DEFAULT_MB
    # With the precision variable unset the CPU may choose a variant (Variant.preferred_on): the default that
    # serves instead when the published model does not have it.
    fallback: variants.Variant | None = None

    @classmethod
    def from_env(cls) -> Settings:
        variant, fallback = _variants()
        return cls(
            model_source=_model_source(),
            model_dir=Path(_str("MODEL_DIR", "/tmp/models")),  # noqa: S108 - Lambda's only writable dir  # nosec B108
            variant=variant,
            max_body_bytes=_int("MAX_BODY_BYTES", 1_000_000),
            max_context_chars=_int("MAX_CONTEXT_CHARS", 100_000),
            max_batch_size=_int("MAX_BATCH_SIZE", 32),
            max_windows=_int("MAX_WINDOWS", 64),
            max_batch_windows=_int("MAX_BATCH_WINDOWS", DEFAULT_MAX_BATCH_WINDOWS),
            max_bulk_items=_int("MAX_BULK_ITEMS", DEFAULT_MAX_BULK_ITEMS),
            max_bulk_windows=_int("MAX_BULK_WINDOWS", DEFAULT_MAX_BULK_WINDOWS),
            model_store=_choice("MODEL_STORE", "auto", MODEL_STORES),
            snapstart=os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE") == SNAP_START,
            answer_cache_entries=_int(
                "ANSWER_CACHE_ENTRIES", answer_cache.DEFAULT_ENTRIES, *answer_cache.ENTRIES_BOUNDS
            ),
            answer_cache_mb=_int("ANSWER_CACHE_MB", answer_cache.DEFAULT_MB, *answer_cache.MB_BOUNDS),
            fallback=fallback,
        )
