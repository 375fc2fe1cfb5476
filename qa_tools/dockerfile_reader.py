"""The Dockerfile read as data, with Docker's own parser (the `dockerfile` package): stages, ENV, CMD, COPY.

Tooling that must agree with the image reads it from here instead of restating it: the local runner
(``qa_tools.local``) takes the image's ENV, CMD and copied code; the infra tests check the image's decisions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import dockerfile as docker_parser

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Stage:
    name: str
    base: str  # an image reference or the name of an earlier stage
    instructions: list[docker_parser.Command] = field(default_factory=list)

    def all(self, keyword: str) -> list[docker_parser.Command]:
        return [i for i in self.instructions if i.cmd == keyword]


@dataclass
class Dockerfile:
    global_args: dict[str, str]
    stages: dict[str, Stage]

    def chain(self, target: str) -> list[Stage]:
        """The stages an image is built from, base first (a stage built FROM another inherits its layers)."""
        chain = [self.stages[target]]
        while (base := _substitute(chain[-1].base, self.global_args)) in self.stages:
            chain.append(self.stages[base])
        return chain[::-1]

    def instructions(self, target: str) -> list[docker_parser.Command]:
        return [i for stage in self.chain(target) for i in stage.instructions]

    def env(self, target: str) -> dict[str, str]:
        return {k: v for i in self.instructions(target) if i.cmd == "ENV" for k, v in pairs(i).items()}

    def cmd(self, target: str) -> list[str]:
        cmds = [i for i in self.instructions(target) if i.cmd == "CMD"]
        if not cmds:
            raise ValueError(f"target {target} has no CMD")
        if not cmds[-1].json:
            raise ValueError("CMD must be in exec (JSON) form: the shell form would wrap it in /bin/sh -c")
        return list(cmds[-1].value)

    def task_root_sources(self, target: str) -> list[str]:
        """Build-context paths the image copies into its working directory (the Lambda task root), in order."""
        sources: list[str] = []
        for i in self.instructions(target):
            from_stage = any(flag.startswith("--from") for flag in i.flags)
            if i.cmd != "COPY" or from_stage or i.value[-1].startswith("/"):
                continue  # another stage's files, or an absolute destination (e.g. the baked model)
            sources += [src for src in i.value[:-1] if src not in sources]
        return sources


def pairs(instruction: docker_parser.Command) -> dict[str, str]:
    """`ENV A=1 B=2` (parsed as A, 1, B, 2) or `ARG NAME=default` -> {name: value}."""
    if instruction.cmd == "ENV":
        return dict(zip(instruction.value[::2], instruction.value[1::2], strict=True))
    return {name: value for name, _, value in (arg.partition("=") for arg in instruction.value)}


def _substitute(value: str, args: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: args.get(m[1] or m[2], m[0]), value)


def parse_dockerfile(path: Path = DOCKERFILE) -> Dockerfile:
    """Stages of the Dockerfile, as Docker's own parser (the `dockerfile` package) reads it."""
    global_args: dict[str, str] = {}
    stages: dict[str, Stage] = {}
    current: Stage | None = None
    for instruction in docker_parser.parse_file(str(path)):
        if instruction.cmd == "FROM":
            base, *alias = instruction.value
            name = alias[1] if len(alias) == 2 and alias[0].upper() == "AS" else str(len(stages))
            current = stages[name] = Stage(name=name, base=base)
        elif current is None:
            if instruction.cmd != "ARG":
                raise ValueError(f"only ARG may precede the first FROM, got {instruction.cmd}")
            global_args.update(pairs(instruction))
        else:
            current.instructions.append(instruction)
    return Dockerfile(global_args, stages)
