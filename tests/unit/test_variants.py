"""The variant registry: one module per variant, read by settings, manifest, store, backends and publish."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from handler import variants
from handler.errors import ConfigurationError
from handler.hardware import cpu

VARIANTS = list(variants.VARIANTS.values())
BY_NAME = [pytest.param(v, id=v.name) for v in VARIANTS]


@pytest.mark.parametrize("variant", BY_NAME)
def test_a_variant_loads_through_a_backend_and_builds_outside_the_image(variant: variants.Variant) -> None:
    module, _, function = variant.loader.partition(":")
    assert module.startswith("handler.backends.") and function
    assert variant.builder is None or variant.builder.startswith("qa_tools.")  # never serving code


@pytest.mark.parametrize("backend", variants.BACKENDS)
def test_one_default_precision_per_backend(backend: str) -> None:
    defaults = [v.name for v in VARIANTS if v.backend == backend and v.default]
    assert len(defaults) == 1, defaults
    assert variants.default_for(backend).name == defaults[0]


@pytest.mark.parametrize("variant", BY_NAME)
def test_select_finds_each_variant_by_backend_and_precision(variant: variants.Variant) -> None:
    assert variants.select(variant.backend, variant.precision) is variant
    assert variant.precision in variants.precisions(variant.backend)


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.name) for v in VARIANTS if v.weight_file])
def test_a_variants_weight_file_is_its_own(variant: variants.Variant) -> None:
    assert variants.owner_of(variant.weight_file) == (variant.name,)


@pytest.mark.parametrize(
    ("file_name", "owner"),
    [
        ("model.safetensors", "torch"),
        ("model-00001-of-00002.safetensors", "torch"),
        ("model.safetensors.index.json", "torch"),
        ("model.onnx", "onnx-fp32"),
        ("model.onnx_data", "onnx-fp32"),  # external data goes with its graph
    ],
)
def test_sharded_and_external_weights_belong_to_their_variant(file_name: str, owner: str) -> None:
    assert variants.owner_of(file_name) == (owner,)


@pytest.mark.parametrize("file_name", ["config.json", "tokenizer.json", "manifest.json"])
def test_every_other_file_serves_every_variant(file_name: str) -> None:
    assert variants.owner_of(file_name) == variants.NAMES


def test_select_names_the_variable_and_the_choices() -> None:
    choices = ", ".join(variants.precisions("onnx"))
    with pytest.raises(ConfigurationError, match=rf"QA_ONNX_PRECISION must be one of {choices}, got 'int4'"):
        variants.select("onnx", "int4")
    with pytest.raises(
        ConfigurationError, match=rf"QA_BACKEND must be one of {', '.join(variants.BACKENDS)}"
    ):
        variants.select("jax", None)
    # auto only where the CPU has a choice to make: a backend with one precision names it.
    no_choice = [b for b in variants.BACKENDS if variants.AUTO not in variants.precisions(b)]
    assert no_choice
    for backend in no_choice:
        with pytest.raises(
            ConfigurationError, match=rf"must be one of {', '.join(variants.precisions(backend))}, got 'auto'"
        ):
            variants.select(backend, variants.AUTO)


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.name) for v in VARIANTS if v.reference])
def test_a_lossy_variant_names_an_exact_reference(variant: variants.Variant) -> None:
    assert variant.reference is not None
    assert variants.get(variant.reference).reference is None


def test_only_lossy_variants_are_opt_in() -> None:
    """publish builds every variant by default except lossy ones that ask to be chosen (--variants)."""
    opt_in = [v for v in VARIANTS if not v.published_by_default]
    assert all(v.reference is not None for v in opt_in)
    assert all(v.name not in variants.PUBLISHED_BY_DEFAULT for v in opt_in)
    # what an image selects without a precision setting is there after a plain publish
    assert all(variants.default_for(b).name in variants.PUBLISHED_BY_DEFAULT for b in variants.BACKENDS)


def test_an_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=", ".join(variants.NAMES)):
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


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.name) for v in VARIANTS if v.preferred_on])
def test_a_cpu_preferred_variant_is_published_and_chosen_on_its_cpus_only(variant: variants.Variant) -> None:
    """What ``auto`` may choose is there after a plain publish; its flags are ones handler.hardware reads."""
    assert variant.name in variants.PUBLISHED_BY_DEFAULT
    assert set(variant.preferred_on) <= set(cpu.INT8_FLAGS)
    assert variants.AUTO in variants.precisions(variant.backend)
    for flag in variant.preferred_on:
        assert variants.select(variant.backend, None, [flag, "avx2"]) is variant
        assert variants.select(variant.backend, variants.AUTO, [flag]) is variant
    others = [f for f in cpu.INT8_FLAGS if f not in variant.preferred_on]
    assert variants.select(variant.backend, None, others) is variants.default_for(variant.backend)
    assert variants.select(variant.backend, variant.precision, []) is variant
