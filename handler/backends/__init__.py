"""Inference backends behind one small interface; each imports its heavy runtime only when chosen."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

import numpy as np

from handler.settings import BACKEND_VARIANTS


class Backend(Protocol):
    """Maps a padded batch (input_ids, attention_mask, token_type_ids) to start and end logits."""

    name: str

    def logits(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self) -> dict[str, str]: ...


def available_cpus() -> int:
    """vCPUs this process may run on (Lambda: 1 per 1,769 MB of memory), not the host's core count."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_backend(name: str, model_dir: Path) -> Backend:
    if name == "torch":
        from handler.backends.torch_backend import TorchBackend

        return TorchBackend(model_dir, threads=available_cpus())
    if name in ("onnx-fp32", "onnx-int8"):
        from handler.backends.onnx_backend import ONNX_FILES, OnnxBackend

        return OnnxBackend(Path(model_dir) / ONNX_FILES[name], threads=available_cpus())
    raise ValueError(f"unknown QA backend {name!r}; choose one of {', '.join(BACKEND_VARIANTS)}")
