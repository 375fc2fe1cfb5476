"""The model the emulation checks serve: the embedded model's ONNX variants, built here once and cached.

The builders (``handler.variants`` names them: export to fp32, then the int8 recipes) need torch, so they run on
this machine; the emulated interpreters only serve the files. The cache key covers the model's files and the
builders' code, so a changed recipe rebuilds.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from handler import variants
from qa_tools.emulation.arm64_env import REPO
from qa_tools.emulation.cache import cache_root, move_into_cache

EMBEDDED = (
    REPO / "models" / "minilm-l6-squad"
)  # the model the repository ships (fp16 safetensors + tokenizer)
# Another model directory to use instead (the same model elsewhere, e.g. while the embedded one is absent).
MODEL_ENV = "QA_EMULATION_MODEL"
_BUILDER_CODE = (REPO / "qa_tools" / "export.py", REPO / "qa_tools" / "quantize.py")
BUILT = tuple(v.name for v in variants.VARIANTS.values() if v.builder)  # the ONNX variants
_WEIGHTS = (".safetensors", ".bin", ".onnx", ".onnx_data")


def source(explicit: Path | None = None) -> Path:
    """The model directory: ``explicit``, else $QA_EMULATION_MODEL, else the embedded one."""
    chosen = explicit or Path(os.environ.get(MODEL_ENV) or EMBEDDED)
    if not (chosen / "config.json").is_file():
        raise FileNotFoundError(f"{chosen} is not a model directory (no config.json); set {MODEL_ENV}")
    return chosen


def _key(model: Path) -> str:
    digest = hashlib.sha256(" ".join(BUILT).encode())
    for path in sorted(p for p in model.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(model)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    for path in _BUILDER_CODE:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def prepared(model: Path, cache: Path | None = None, log: Callable[[str], None] = lambda _: None) -> Path:
    """A directory serving every built variant (tokenizer and config copied, weights built), cached."""
    cache = (cache or cache_root()) / "models"
    target = cache / f"{model.name}-{_key(model)}"
    if (target / "config.json").is_file():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="build-", dir=cache))
    try:
        for path in model.iterdir():
            if path.is_file() and not path.name.endswith(_WEIGHTS) and path.name != "config.json":
                shutil.copy2(path, scratch / path.name)
        for name in BUILT:
            log(f"building {name} from {model}")
            variants.resolve(str(variants.get(name).builder))(model, scratch)
        shutil.copy2(model / "config.json", scratch / "config.json")  # last: it marks the directory complete
        move_into_cache(scratch, target, "config.json")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
