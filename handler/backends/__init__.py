"""Inference backends behind one small interface; each imports its heavy runtime only when chosen.

A backend module exposes ``load(files, variant, threads)`` (``files``: a ``handler.model_files.ModelFiles``, on
disk or in memory); the variant registry (``handler.variants``) names it, so nothing here lists backends.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from handler import variants
from handler.hardware import threads
from handler.model_files import ModelFiles, as_model_files


class Backend(Protocol):
    """Maps a padded batch (input_ids, attention_mask, token_type_ids) to start and end logits."""

    name: str

    def logits(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]: ...

    def describe(self) -> dict[str, str]: ...


def available_cpus() -> int:
    """Intra-op threads for this sandbox: the rule of ``handler.hardware.threads`` (from Lambda's CPU share)."""
    return threads.plan().threads


def load_backend(variant: variants.Variant | str, model: ModelFiles | Path) -> Backend:
    chosen = variants.get(variant) if isinstance(variant, str) else variant
    backend: Backend = chosen.load(as_model_files(model), chosen, threads=available_cpus())
    return backend
