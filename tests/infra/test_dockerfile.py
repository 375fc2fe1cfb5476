"""The Dockerfile, read as data: what each image is built from, installs, copies and runs.

hadolint (tests/infra/test_infra_lint.py) checks style; these tests check the project's own rules: the Lambda
base image, an importable CMD, no secrets in ARG/ENV, hash-checked locked dependencies in layers before the
code, CPU-only torch in its own layer, code readable by Lambda's non-root user, caches in /tmp, and no model
baked in unless asked for.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import dockerfile as docker_parser
import pytest

from tests.fixtures import ROOT
from tests.fixtures.dockerfile import BASE_IMAGE, RUNTIME_TARGETS, Dockerfile, pairs, parse_dockerfile
from tests.fixtures.requirements import locked


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse_dockerfile()


def _copy_sources(instruction: docker_parser.Command) -> list[str]:
    return list(instruction.value[:-1])  # the last word is the destination


def _pip_installs(instructions: list[docker_parser.Command]) -> list[str]:
    commands = [c for i in instructions if i.cmd == "RUN" for c in re.split(r"&&|;", " ".join(i.value))]
    return [c.strip() for c in commands if "pip install" in c]


@pytest.mark.parametrize("target", [*RUNTIME_TARGETS, "default", "baked"])
def test_every_image_starts_from_the_lambda_python_base(dockerfile: Dockerfile, target: str) -> None:
    assert dockerfile.chain(target)[0].base == BASE_IMAGE


@pytest.mark.parametrize("target", [*RUNTIME_TARGETS, "default", "baked"])
def test_cmd_is_the_handler_entry_point_in_exec_form(dockerfile: Dockerfile, target: str) -> None:
    assert dockerfile.cmd(target) == ["handler.app.lambda_handler"]


def test_cmd_target_is_importable_and_callable(
    dockerfile: Dockerfile, app_factory, tiny_bert_dir: Path
) -> None:
    module_name, _, attribute = dockerfile.cmd("default")[0].rpartition(".")
    app_factory(MODEL_LOCAL_PATH=str(tiny_bert_dir))  # Lambda's init phase, with a model to load
    handler = getattr(importlib.import_module(module_name), attribute)
    assert callable(handler)


def test_each_target_runs_the_backend_it_installs(dockerfile: Dockerfile) -> None:
    assert dockerfile.env("onnx")["QA_BACKEND"] == "onnx"
    assert dockerfile.env("torch")["QA_BACKEND"] == "torch"
    assert dockerfile.env("default")["QA_BACKEND"] == "onnx", "a build without --target: what deploys"
    onnx_copies = [s for i in dockerfile.instructions("onnx") if i.cmd == "COPY" for s in _copy_sources(i)]
    assert onnx_copies == ["requirements-onnx.lock", "handler/"], "the ONNX image installs no torch set"
    assert not {"torch", "transformers"} & set(locked(ROOT / "requirements-onnx.lock"))


def test_copied_files_exist_and_pass_dockerignore(dockerfile: Dockerfile) -> None:
    copies = [i for stage in dockerfile.stages.values() for i in stage.all("COPY")]
    sources = {s for i in copies for s in _copy_sources(i) if "$" not in s}  # ${MODEL_SRC}: user-supplied
    assert {"requirements-onnx.lock", "requirements.lock", "requirements-torch.txt", "handler/"} <= sources
    for source in sources:
        assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
        assert not _dockerignored(source.rstrip("/") + ("/app.py" if source.endswith("/") else "")), source


def _glob_regex(glob: str) -> str:
    """A .dockerignore glob as a regex: `*` and `?` stop at `/`, `**` crosses directories (Go filepath.Match)."""
    out, n = "", 0
    while n < len(glob):
        if glob.startswith("**/", n):
            out, n = out + "(?:.*/)?", n + 3
        elif glob.startswith("**", n):
            out, n = out + ".*", n + 2
        else:
            out += {"*": "[^/]*", "?": "[^/]"}.get(glob[n], re.escape(glob[n]))
            n += 1
    return out


def _dockerignored(path: str) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides (! re-includes)."""
    lines = [p.strip() for p in (ROOT / ".dockerignore").read_text().splitlines()]
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in (p for p in lines if p and not p.startswith("#")):
        negated = pattern.startswith("!")
        regex = _glob_regex(pattern.lstrip("!").rstrip("/"))
        if any(re.fullmatch(regex, c) for c in candidates):
            ignored = not negated
    return ignored


@pytest.mark.parametrize(
    "path",
    [".git/config", ".aws/credentials", ".env", ".venv/bin/python", "tests/test_engine.py", "bench/run.py"],
)
def test_build_context_leaves_out_everything_but_the_runtime(path: str) -> None:
    assert _dockerignored(path)
    assert not _dockerignored("handler/app.py")
    assert _dockerignored("handler/__pycache__/app.cpython-312.pyc")


def test_no_secret_looking_args_or_env(dockerfile: Dockerfile) -> None:
    secretish = re.compile(
        r"SECRET|PASSWORD|PASSWD|TOKEN|ACCESS_KEY|CREDENTIAL|PRIVATE|SESSION|API_KEY", re.I
    )
    names = dict(dockerfile.global_args)
    for stage in dockerfile.stages.values():
        for instruction in stage.all("ARG") + stage.all("ENV"):
            names.update(pairs(instruction))
    assert names, "parser found no ARG/ENV at all"
    for name, value in names.items():
        assert not secretish.search(name), f"{name} looks like a secret: pass credentials at run time"
        assert not name.startswith("AWS_"), f"{name}: AWS settings come from the Lambda environment"
        assert not re.search(r"(AKIA|ASIA)[A-Z0-9]{16}", value), f"{name} holds an AWS access key id"


@pytest.mark.parametrize("target", RUNTIME_TARGETS)
def test_dependency_layers_come_before_code(dockerfile: Dockerfile, target: str) -> None:
    instructions = dockerfile.instructions(target)
    last_install = max(
        n for n, i in enumerate(instructions) if i.cmd == "RUN" and "pip install" in " ".join(i.value)
    )
    code_copy = next(n for n, i in enumerate(instructions) if i.cmd == "COPY" and "handler/" in i.value)
    assert last_install < code_copy


def test_pip_never_keeps_its_cache(dockerfile: Dockerfile) -> None:
    installs = _pip_installs([i for s in dockerfile.stages.values() for i in s.instructions])
    assert len(installs) >= 3
    for command in installs:
        assert "--no-cache-dir" in command, command


def test_dependencies_are_locked_wheels_checked_against_their_hashes(dockerfile: Dockerfile) -> None:
    """Everything but torch comes from a lock file (scripts/lock.sh): pinned, hashed, nothing else pulled in."""
    installs = _pip_installs([i for s in dockerfile.stages.values() for i in s.instructions])
    for command in installs:
        assert "--no-deps" in command and "--only-binary=:all:" in command, command
        if "--index-url" not in command:  # the CPU torch wheel, below
            source = re.search(r"-r (\S+)", command)[1]
            assert source.endswith(".lock") and "--require-hashes" in command, command


def test_torch_is_the_cpu_build_in_its_own_layer(dockerfile: Dockerfile) -> None:
    torch_stage = dockerfile.stages["torch"]
    index = {k: v for i in torch_stage.all("ARG") for k, v in pairs(i).items()}["TORCH_INDEX_URL"]
    assert index == "https://download.pytorch.org/whl/cpu"
    (from_index,) = [c for c in _pip_installs(torch_stage.instructions) if "--index-url" in c]
    assert "--no-deps" in from_index, "only torch itself may come from the PyTorch index"
    pin_file = re.search(r"-r (\S+)", from_index)[1]
    pins = [line for line in (ROOT / pin_file).read_text().splitlines() if line and not line.startswith("#")]
    assert len(pins) == 1 and pins[0].startswith("torch=="), f"{pin_file} must pin torch and nothing else"
    before = torch_stage.instructions[
        : next(n for n, i in enumerate(torch_stage.instructions) if i.cmd == "RUN")
    ]
    copied = [s for i in before if i.cmd == "COPY" for s in _copy_sources(i)]
    assert copied == [pin_file], "a change to any other file must not invalidate torch's layer"
    assert "torch" not in locked(ROOT / "requirements.lock"), "torch comes from the CPU index, not PyPI"


@pytest.mark.parametrize("target", [*RUNTIME_TARGETS, "baked"])
def test_copied_code_is_readable_by_lambdas_user(dockerfile: Dockerfile, target: str) -> None:
    """Lambda runs the function as a non-root user: a checkout with mode 600 files must still be readable."""
    for copy in (i for i in dockerfile.stages[target].instructions if i.cmd == "COPY"):
        if any(s.endswith("/") for s in _copy_sources(copy)):
            (chmod,) = [f for f in copy.flags if f.startswith("--chmod=")]
            mode = int(chmod.removeprefix("--chmod="), 8)
            assert mode & 0o005 == 0o005, f"{chmod}: others need read and search (x) on directories"


@pytest.mark.parametrize("target", [*RUNTIME_TARGETS, "default"])
def test_caches_point_at_tmp_and_no_model_is_baked(dockerfile: Dockerfile, target: str) -> None:
    env = dockerfile.env(target)
    for name in ("HF_HOME", "XDG_CACHE_HOME", "MODEL_DIR"):
        assert env[name].startswith("/tmp/"), f"{name}: only /tmp is writable on Lambda"
    assert "MODEL_LOCAL_PATH" not in env
    copied = [s for i in dockerfile.instructions(target) if i.cmd == "COPY" for s in _copy_sources(i)]
    assert not any("MODEL" in s for s in copied)


def test_baked_target_copies_the_model_where_settings_look(dockerfile: Dockerfile) -> None:
    baked = dockerfile.stages["baked"]
    (copy,) = baked.all("COPY")
    destination = copy.value[-1].rstrip("/")
    assert dockerfile.env("baked")["MODEL_LOCAL_PATH"] == destination
    assert dockerfile.global_args["VARIANT"] in RUNTIME_TARGETS
