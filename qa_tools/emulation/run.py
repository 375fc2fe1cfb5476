"""Runs ``ask`` on this CPU or an emulated one, with a clean environment, and returns its parsed result."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from qa_tools.emulation import arm64_env
from qa_tools.emulation.arm64_env import REPO
from qa_tools.emulation.machines import Machine


class EmulationError(RuntimeError):
    """The emulated run failed; the message carries its exit status and the end of its stderr."""


def _environment(pythonpath: Sequence[Path]) -> dict[str, str]:
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "LANG": "C.UTF-8",
        "TMPDIR": tempfile.gettempdir(),
        "PYTHONPATH": os.pathsep.join(str(p) for p in pythonpath),
        "PYTHONDONTWRITEBYTECODE": "1",  # the repository stays clean of another interpreter's bytecode
    }


def command(
    machine: Machine | None,
    args: Sequence[str],
    *,
    log: Callable[[str], None] = lambda _: None,
    prelude: Sequence[str] = (),
) -> list[str]:
    """argv running ``python args`` on ``machine`` (None: natively, with this interpreter)."""
    if machine is None:
        return ["env", "-i", *(f"{k}={v}" for k, v in _environment([REPO]).items()), sys.executable, *args]
    if machine.arch == "aarch64":
        env = arm64_env.ensure(log=log)
        return machine.command(
            env.python, args, env=_environment([env.site, REPO]), root=env.root, prelude=prelude
        )
    return machine.command(sys.executable, args, env=_environment([REPO]), prelude=prelude)


def ask(
    machine: Machine | None,
    model: Path,
    variants: Sequence[str],
    questions: Sequence[dict[str, str]],
    *,
    log: Callable[[str], None] = lambda _: None,
    prelude: Sequence[str] = (),
    timeout_s: float = 1800,
) -> dict[str, Any]:
    """``qa_tools.emulation.ask``'s report; its progress goes to our stderr as it comes, its stderr is kept."""
    with tempfile.TemporaryDirectory(prefix="emulation-") as tmp:
        path = Path(tmp) / "questions.json"
        path.write_text(json.dumps(list(questions)), encoding="utf-8")
        args = ["-m", "qa_tools.emulation.ask", "--model", str(model), "--questions", str(path)]
        args += [arg for name in variants for arg in ("--variant", name)]
        argv = command(machine, args, log=log, prelude=prelude)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        returncode, stdout, stderr = _run(argv, log, timeout_s)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if returncode != 0:
        tail = "\n".join(stderr.splitlines()[-15:])
        where = machine.name if machine else "native"
        raise EmulationError(f"{where} run exited with status {returncode}:\n{tail}")
    report: dict[str, Any] = json.loads(stdout)
    report["stderr"] = stderr
    # CPU seconds, not wall time: what the run costs whatever else the machine is doing.
    report["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    return report


def _run(argv: Sequence[str], log: Callable[[str], None], timeout_s: float) -> tuple[int, str, str]:
    """Runs ``argv``, passing each stderr line to ``log`` as it comes; (status, stdout, stderr)."""
    lines: list[str] = []
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO) as proc:
        out, err = proc.stdout, proc.stderr
        if out is None or err is None:
            raise EmulationError("no pipes to the child")

        def drain() -> None:
            for line in err:
                lines.append(line)
                log(line.rstrip("\n"))

        expired: list[bool] = []

        def kill() -> None:  # a hung emulator must not hang CI
            expired.append(True)
            proc.kill()

        reader = threading.Thread(target=drain, daemon=True)
        timer = threading.Timer(timeout_s, kill)
        reader.start()
        timer.start()
        try:
            stdout = out.read()
            proc.wait()
            reader.join()
        finally:
            timer.cancel()
    if expired:
        lines.append(f"(killed: no result after {timeout_s:.0f} s)\n")
    return proc.returncode, stdout, "".join(lines)
