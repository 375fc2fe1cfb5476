"""The ONNX export and quantization say nothing a user cannot act on (qa_tools.export_log_filters), and still say the rest."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import pytest

from qa_tools.export_log_filters import exporter_noise, quantizer_noise
from qa_tools.quantize import build_int8, build_int8_fast
from qa_tools.tiny_models import build_tiny_model

NOISE = ("torchvision is not installed", "Please consider to run pre-processing", "LeafSpec", "to quantize")


def test_export_and_quantization_are_quiet(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    model = build_tiny_model(tmp_path / "model", "bert")
    root_handlers = list(logging.getLogger().handlers)
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        built = [build_int8(model, tmp_path / "onnx"), build_int8_fast(model, tmp_path / "onnx")]
    out, err = capfd.readouterr()
    assert all(path.is_file() for path in built)
    said = out + err + caplog.text + "".join(str(w.message) for w in caught)
    assert not [n for n in NOISE if n in said], said[-2000:]
    assert logging.getLogger().handlers == root_handlers  # the quantizer's logging.warning set up nothing


def test_other_messages_still_get_through(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO), quantizer_noise(), exporter_noise():
        logging.getLogger().warning("Please consider to run pre-processing before quantization. See ...")
        logging.getLogger().warning("the quantizer found something else")
        exporter = logging.getLogger("torch.onnx._internal.exporter._registration")
        exporter.warning("torchvision is not installed. Skipping %s", "torchvision::nms")
        exporter.warning("a real exporter problem")
        with warnings.catch_warnings(record=True) as caught:  # keeps the filters exporter_noise() added
            warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)
            warnings.warn("some other deprecation", FutureWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["some other deprecation"]
    assert [r.getMessage() for r in caplog.records] == [
        "the quantizer found something else",
        "a real exporter problem",
    ]
