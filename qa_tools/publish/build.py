"""The variants made at publish time: each requested variant's builder (``handler.variants``), in registry order."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from handler import variants as registry
from qa_tools.publish.log import log


def build(model_dir: Path, out: Path, variants: Sequence[str]) -> dict[str, Path]:
    """Runs the builder of each requested variant that has one (in registry order: a builder may reuse another's
    output in ``out``)."""
    built: dict[str, Path] = {}
    for variant in registry.VARIANTS.values():
        if variant.name not in variants or variant.builder is None:
            continue
        try:
            builder = registry.resolve(variant.builder)
        except ImportError as exc:
            raise ValueError(
                f"cannot build {variant.name} here ({exc}); publish with --variants torch"
            ) from exc
        log(f"building {variant.name} (an ONNX export, about a minute for a roberta-base-size model) ...")
        started = time.perf_counter()
        path = builder(model_dir, out)
        log(f"  built {path.name} in {time.perf_counter() - started:.1f} s")
        built[path.name] = path
    return built
