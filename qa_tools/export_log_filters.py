"""Messages from the ONNX exporter and quantizer that mean nothing to a user of this project, dropped where we
call those libraries, each with the reason it is noise. Everything else they say still reaches you."""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager


class _Drop(logging.Filter):
    def __init__(self, pattern: str) -> None:
        super().__init__()
        self.pattern = re.compile(pattern)

    def filter(self, record: logging.LogRecord) -> bool:
        return not self.pattern.search(record.getMessage())


@contextmanager
def _dropped(logger: logging.Logger, pattern: str) -> Iterator[None]:
    drop = _Drop(pattern)
    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)


@contextmanager
def exporter_noise() -> Iterator[None]:
    """``torch.onnx.export(dynamo=True)`` lists each torchvision op it skips when torchvision is not installed
    (a QA model has none), and torch.export's own pytree code trips torch's LeafSpec deprecation warning."""
    registration = logging.getLogger("torch.onnx._internal.exporter._registration")
    with warnings.catch_warnings(), _dropped(registration, r"^torchvision is not installed"):
        warnings.filterwarnings(
            "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
        )
        yield


@contextmanager
def quantizer_noise() -> Iterator[None]:
    """``quantize_dynamic`` advises ORT's shape-inference pre-processing, measured to change neither accuracy nor
    speed here (qa_tools/quantize.py). It logs through ``logging.warning``, which would also give the root logger a
    stderr handler for the rest of the process, as would the ``logging.basicConfig(level=INFO)`` the MatMulNBits
    quantizer runs on import: a placeholder handler prevents both. That quantizer also logs two INFO lines per
    node ("start to quantize ..."): only its warnings pass."""
    root = logging.getLogger()
    nbits = logging.getLogger("onnxruntime.quantization.matmul_nbits_quantizer")
    placeholder = logging.NullHandler() if not root.handlers else None
    if placeholder:
        root.addHandler(placeholder)
    level = nbits.level
    nbits.setLevel(logging.WARNING)
    try:
        with _dropped(root, r"^Please consider to run pre-processing before quantization"):
            yield
    finally:
        nbits.setLevel(level)
        if placeholder:
            root.removeHandler(placeholder)
