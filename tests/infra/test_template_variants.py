"""template.yaml's backend and precision parameters are the variant registry's (``handler.variants``).

CloudFormation cannot import Python, so the template spells the names out; these tests hold them to the
registry, which a new variant edits instead of any list here.
"""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.decode import decode_str

from handler import variants
from tests.fixtures import ROOT


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return parsed


def _function_env(template: dict[str, Any]) -> dict[str, Any]:
    (function,) = [
        r
        for r in template["Resources"].values()
        if r["Type"] == "AWS::Serverless::Function" and r["Properties"].get("PackageType") == "Image"
    ]
    return function["Properties"]["Environment"]["Variables"]


def test_image_variant_choices_are_the_registry_backends(template: dict[str, Any]) -> None:
    assert sorted(template["Parameters"]["ImageVariant"]["AllowedValues"]) == sorted(variants.BACKENDS)


@pytest.mark.parametrize("backend", [b for b in variants.BACKENDS if len(variants.precisions(b)) > 1])
def test_a_precision_parameter_per_backend_with_a_choice(template: dict[str, Any], backend: str) -> None:
    """``<Backend>Precision``: the registry's precisions, its default, passed as QA_<BACKEND>_PRECISION."""
    name = f"{backend.capitalize()}Precision"
    parameter = template["Parameters"].get(name)
    assert parameter is not None, (
        f"template.yaml has no {name} parameter for the {backend} backend's precisions"
    )
    assert sorted(parameter["AllowedValues"]) == sorted(variants.precisions(backend))
    chooser = variants.AUTO if variants.AUTO in variants.precisions(backend) else None
    assert parameter["Default"] == (chooser or variants.default_for(backend).precision)
    assert _function_env(template)[variants.precision_env(backend)] == {"Ref": name}


def test_no_precision_parameter_without_a_registry_backend(template: dict[str, Any]) -> None:
    named = {p.removesuffix("Precision").lower() for p in template["Parameters"] if p.endswith("Precision")}
    assert named <= {b for b in variants.BACKENDS if len(variants.precisions(b)) > 1}
