"""The variant registry: one module per variant, read by settings, manifest, store, backends and publish."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from handler import variants
from handler.errors import ConfigurationError


def test_the_shipped_variants() -> None:
    assert variants.NAMES == ("onnx-fp32", "onnx-int8", "onnx-int8-fast", "torch")
    for variant in variants.VARIANTS.values():
        module, _, function = variant.loader.partition(":")
        assert module.startswith("handler.backends.") and function
        assert variant.builder is None or variant.builder.startswith("qa_tools.")  # never serving code
    defaults = [v.name for v in variants.VARIANTS.values() if v.default]
    assert sorted(defaults) == ["onnx-int8", "torch"]  # one per backend


@pytest.mark.parametrize(
    ("file_name", "owners"),
    [
        ("model.safetensors", ("torch",)),
        ("model-00001-of-00002.safetensors", ("torch",)),
        ("model.safetensors.index.json", ("torch",)),
        ("model.onnx", ("onnx-fp32",)),
        ("model.int8.onnx", ("onnx-int8",)),
        ("model.int8-fast.onnx", ("onnx-int8-fast",)),
        ("model.onnx_data", ("onnx-fp32",)),
        ("config.json", variants.NAMES),
        ("tokenizer.json", variants.NAMES),
    ],
)
def test_weights_belong_to_one_variant_everything_else_to_all(
    file_name: str, owners: tuple[str, ...]
) -> None:
    assert variants.owner_of(file_name) == owners


def test_select_names_the_variable_and_the_choices() -> None:
    assert variants.select("onnx", None).name == "onnx-int8"
    assert variants.select("onnx", "fp32").name == "onnx-fp32"
    assert variants.select("onnx", "int8-fast").name == "onnx-int8-fast"
    with pytest.raises(
        ConfigurationError, match=r"QA_ONNX_PRECISION must be one of fp32, int8, int8-fast, got 'int4'"
    ):
        variants.select("onnx", "int4")
    with pytest.raises(ConfigurationError, match=r"QA_BACKEND must be one of onnx, torch"):
        variants.select("jax", None)


def test_lossy_variants_name_an_exact_reference_and_the_lossiest_is_opt_in() -> None:
    lossy = {v.name: v.reference for v in variants.VARIANTS.values() if v.reference}
    assert lossy == {"onnx-int8": "onnx-fp32", "onnx-int8-fast": "onnx-fp32"}
    assert all(variants.get(ref).reference is None for ref in lossy.values())
    assert variants.PUBLISHED_BY_DEFAULT == ("onnx-fp32", "onnx-int8", "torch")


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match="onnx-fp32, onnx-int8, onnx-int8-fast, torch"):
        variants.get("onnx-fp16")


def test_adding_a_variant_is_adding_a_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A module dropped into the package is found: no table elsewhere lists variants."""
    (tmp_path / "onnx_fp16.py").write_text(
        "from handler.variants import Variant\n"
        "VARIANT = Variant(name='onnx-fp16', backend='onnx', precision='fp16', weights=(r'model\\.fp16\\.onnx',),\n"
        "                  weight_file='model.fp16.onnx', loader='handler.backends.onnx_backend:load')\n"
    )
    monkeypatch.setattr(variants, "__path__", [*variants.__path__, str(tmp_path)])
    monkeypatch.delitem(sys.modules, "handler.variants.onnx_fp16", raising=False)
    found = variants._discover()
    assert "onnx-fp16" in found and found["onnx-fp16"].owns("model.fp16.onnx")
    monkeypatch.setattr(variants, "VARIANTS", found)
    assert variants.select("onnx", "fp16").weight_file == "model.fp16.onnx"
    sys.modules.pop("handler.variants.onnx_fp16", None)
