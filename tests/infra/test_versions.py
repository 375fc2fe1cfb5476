"""Every deploy that changes how the function behaves publishes a version, and CodeDeploy moves the alias to it.

SAM hashes the function's properties with parameter Refs unresolved (AutoPublishAliasAllProperties; SAM issue
#3820), so a parameter-only change keeps the version's logical id. The version's Description names every
parameter the function's configuration reads; CloudFormation replaces an AWS::Lambda::Version whose
Description changes (a create-only property), i.e. publishes a new version, and the alias's
CodeDeployLambdaAliasUpdate runs the pre-traffic hook against it. Proven with SAM's translator and
cfn-lint's copy of the CloudFormation resource schema.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode_str
from cfnlint.schema import PROVIDER_SCHEMA_MANAGER

from tests.fixtures import ROOT
from tests.fixtures.sam import IMAGE_URI, Deployed, run_with_sam, translate

# Where the value lives on the alias, not on the version: it cannot change what a version does.
ALIAS_ONLY = {"ProvisionedConcurrency"}


def _raw() -> dict[str, Any]:
    template, problems = decode_str((ROOT / "template.yaml").read_text())
    assert not problems, problems
    return template


def _parameters_in(node: Any, template: dict[str, Any]) -> set[str]:
    """Template parameters a node reads: Refs, ${Name} in Subs, and the Refs of the conditions it uses."""
    found: set[str] = set()
    text = json.dumps(node)
    names = set(template["Parameters"])
    found |= {n for n in re.findall(r'"Ref": "([\w:.]+)"', text) if n in names}
    found |= {n for n in re.findall(r"\$\{([\w:.]+)\}", text) if n in names}
    for condition in re.findall(r'"Fn::If": \["(\w+)"', text):
        found |= _parameters_in(template["Conditions"][condition], template)
    return found


def _version(stack: Deployed) -> tuple[str, dict[str, Any]]:
    ((name, version),) = [
        (k, v) for k, v in stack.of_type("AWS::Lambda::Version").items() if k.startswith("QaFunction")
    ]
    return name, version


def _description(stack: Deployed) -> str:
    sub = _version(stack)[1]["Properties"]["Description"]["Fn::Sub"]
    return re.sub(r"\$\{([\w:]+)\}", lambda m: stack.parameters[m.group(1)], sub)


def test_the_version_description_names_every_parameter_the_function_reads() -> None:
    template = _raw()
    function = template["Resources"]["QaFunction"]
    read = _parameters_in({"Metadata": function["Metadata"], "Properties": function["Properties"]}, template)
    described = _parameters_in(function["Properties"]["VersionDescription"], template)
    assert read - ALIAS_ONLY <= described, (
        f"not in VersionDescription: {sorted(read - ALIAS_ONLY - described)}"
    )
    assert {"ImageVariant", "ModelPrefix", "OnnxPrecision", "MemorySize"} <= described


def test_the_longest_description_fits_lambdas_256_characters() -> None:
    template = _raw()
    sub = template["Resources"]["QaFunction"]["Properties"]["VersionDescription"]["Fn::Sub"]
    longest = {
        name: "x" * int(p.get("MaxLength", 0))
        or max((str(v) for v in p.get("AllowedValues", [])), key=len, default="")
        for name, p in template["Parameters"].items()
    }
    longest |= {"ModelBucket": "b" * 63, "MemorySize": "10240", "EphemeralStorageSize": "10240"}
    assert len(re.sub(r"\$\{(\w+)\}", lambda m: longest[m.group(1)], sub)) <= 256


@pytest.mark.parametrize(
    "change",
    [
        {"MemorySize": "4096"},
        {"OnnxPrecision": "fp32"},
        {"ModelPrefix": "models/minilm/"},
        {"LogLevel": "DEBUG"},
        {"ImageVariant": "torch"},
        {"SnapStart": "On", "EphemeralStorageSize": "512"},
    ],
    ids=lambda c: ",".join(c),
)
def test_a_parameter_only_change_replaces_the_version(change: dict[str, str]) -> None:
    before, after = translate(), translate(**change)
    # The logical id stays (SAM hashes Refs unresolved, or the hash moves as well): either way a new version.
    same_id = _version(before)[0] == _version(after)[0]
    assert not same_id or _description(before) != _description(after), change
    for value in change.values():
        assert value in _description(after)


def test_the_same_parameters_keep_the_version() -> None:
    assert _version(translate())[0] == _version(translate())[0]
    assert _description(translate()) == _description(translate())


def test_cloudformation_replaces_a_version_whose_description_changes() -> None:
    """The resource schema CloudFormation publishes (cfn-lint's copy): Description is create-only."""
    schema = PROVIDER_SCHEMA_MANAGER.get_resource_schema("us-east-1", "AWS::Lambda::Version")
    assert "/properties/Description" in schema.schema["createOnlyProperties"]


def test_the_alias_update_goes_through_codedeploy() -> None:
    stack = translate()
    name, _ = _version(stack)
    (alias,) = stack.of_type("AWS::Lambda::Alias").values()
    assert alias["Properties"]["FunctionVersion"] == {"Fn::GetAtt": [name, "Version"]}
    assert "CodeDeployLambdaAliasUpdate" in alias["UpdatePolicy"]


def test_replaced_versions_are_deleted() -> None:
    """VersionDeletionPolicy: Delete: a replaced version (and its SnapStart snapshot) does not pile up."""
    _, version = _version(translate())
    assert version["DeletionPolicy"] == "Delete"


def test_auto_publish_code_sha256_takes_no_sub(tmp_path: Path) -> None:
    """The alternative the issue names: SAM refuses a !Sub there (only a string or a single Ref)."""
    text = (
        (ROOT / "template.yaml")
        .read_text()
        .replace(
            "      AutoPublishAliasAllProperties: true\n",
            "      AutoPublishAliasAllProperties: true\n      AutoPublishCodeSha256: !Sub ${ModelPrefix}${MemorySize}\n",
        )
    )
    path = tmp_path / "template.yaml"
    path.write_text(text)
    script = ROOT / "tests" / "fixtures" / "sam_translate.py"
    result = run_with_sam(script, str(path), IMAGE_URI, json.dumps({"ModelBucket": "my-qa-models"}))
    assert result.returncode != 0
    assert "AutoPublishCodeSha256" in result.stderr
