"""What a warm-up did (``WarmupReport``): logged once, put in metrics, and what the engine loads from."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aws_lambda_powertools import Logger

from handler.model_files import DirectoryFiles, ModelFiles
from handler.store.cache import MIB
from handler.store.golden import Golden

logger = Logger(child=True)
_UNLOGGED = ("model", "golden")  # the files themselves, and ~200 questions with their contexts


@dataclass(frozen=True, kw_only=True)
class WarmupReport:
    """What the warm-up did: log it, put it in metrics, and load the engine from ``model``."""

    model: ModelFiles  # a verified directory, or verified bytes in memory (released after loading)
    variant: str
    source: str
    model_name: str
    revision: str
    manifest_sha256: str
    files: int
    bytes: int  # downloaded; 0 when skipped
    seconds: float
    skipped: bool  # a verified copy was already there (or the model is baked into the image)
    store: str = "disk"  # disk | memory | image
    reason: str = ""  # why this store, when MODEL_STORE=auto chose it
    fidelity: Mapping[str, Any] | None = None  # the manifest's figures for a lossy variant, if it has them
    golden: Golden | None = None  # the manifest's golden answers (the self-check's questions), if it has them

    @property
    def model_dir(self) -> Path | None:
        """The model directory on disk; None in memory mode."""
        return self.model.root if isinstance(self.model, DirectoryFiles) else None

    @property
    def mb_per_s(self) -> float:
        return self.bytes / MIB / self.seconds if self.bytes and self.seconds > 0 else 0.0

    def as_log(self) -> dict[str, Any]:
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _UNLOGGED}
        return {
            **fields,
            "model_dir": str(self.model_dir or ""),
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(self.mb_per_s, 1),
        }

    def log(self) -> None:
        logger.info("model warm-up", extra=self.as_log())
