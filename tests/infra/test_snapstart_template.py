"""template.yaml's SnapStart switch: applied to published versions, and its limits enforced by Rules.

CloudFormation evaluates ``Rules`` before it creates anything; cfn-lint and ``sam validate`` check their syntax
(tests/infra/test_infra_lint.py) but not their outcome, so ``holds`` below evaluates the assertions for given
parameter values with the rule functions the template uses (``Ref`` gives a parameter's value as a string,
``Fn::Equals`` compares, ``Fn::Not``/``And``/``Or`` combine), as CloudFormation documents them.
"""

from __future__ import annotations

from typing import Any

import pytest
from cfnlint.decode import decode_str

from tests.fixtures import ROOT


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    parsed, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return parsed


def holds(expr: Any, params: dict[str, str]) -> Any:
    if isinstance(expr, dict):
        ((fn, arg),) = expr.items()
        if fn == "Ref":
            return params[arg]
        values = [holds(a, params) for a in arg]
        if fn == "Fn::Equals":
            return str(values[0]) == str(values[1])
        if fn == "Fn::Not":
            return not values[0]
        if fn == "Fn::And":
            return all(values)
        if fn == "Fn::Or":
            return any(values)
        raise AssertionError(f"rule function {fn} is not evaluated here")
    return expr


def failing_assertions(template: dict[str, Any], **overrides: str) -> list[str]:
    params = {name: str(p.get("Default", "")) for name, p in template["Parameters"].items()}
    params.update(overrides)
    failed = []
    for rule in template.get("Rules", {}).values():
        if "RuleCondition" in rule and not holds(rule["RuleCondition"], params):
            continue
        failed += [a["AssertDescription"] for a in rule["Assertions"] if not holds(a["Assert"], params)]
    return failed


def test_snapstart_applies_to_the_published_versions_the_alias_serves(template: dict[str, Any]) -> None:
    function = template["Resources"]["QaFunction"]
    props = function["Properties"]
    parameter = template["Parameters"]["SnapStart"]
    assert sorted(parameter["AllowedValues"]) == ["Off", "On"]
    condition, on, off = props["SnapStart"]["ApplyOn"]["Fn::If"]
    assert (on, off) == ("PublishedVersions", "None")
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "SnapStart"}, "On"]}
    assert props["AutoPublishAlias"] == "live"  # SnapStart never applies to $LATEST


def test_default_is_off(template: dict[str, Any]) -> None:
    """The default image (onnx int8) cold-starts in a few seconds; SnapStart would add a cache charge per
    published version and a restore charge larger than that init (docs/cold-starts.md)."""
    assert template["Parameters"]["SnapStart"]["Default"] == "Off"
    assert failing_assertions(template) == []


@pytest.mark.parametrize(
    ("overrides", "refused"),
    [
        ({"SnapStart": "On", "EphemeralStorageSize": "512"}, []),
        ({"SnapStart": "On", "EphemeralStorageSize": "512", "ProvisionedConcurrency": "2"}, ["provisioned"]),
        ({"SnapStart": "On", "EphemeralStorageSize": "2048"}, ["ephemeral storage"]),
        (
            {"SnapStart": "On", "EphemeralStorageSize": "1024", "ProvisionedConcurrency": "1"},
            ["provisioned", "ephemeral storage"],
        ),
        ({"SnapStart": "Off", "EphemeralStorageSize": "10240", "ProvisionedConcurrency": "5"}, []),
    ],
    ids=["on-fits", "on-with-provisioned", "on-with-big-tmp", "on-with-both", "off-anything"],
)
def test_rules_refuse_what_snapstart_does_not_support(
    template: dict[str, Any], overrides: dict[str, str], refused: list[str]
) -> None:
    failed = failing_assertions(template, **overrides)
    assert len(failed) == len(refused)
    for description, topic in zip(failed, refused, strict=True):
        assert topic in description and "set " in description  # says what to change
