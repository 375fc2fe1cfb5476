"""Answer short questions on an emulated CPU and compare with this machine: results (JSON) on stdout.

    python -m qa_tools.emulation --machine graviton2 --variant onnx-int8 --variant onnx-fp32 --questions 20
    python -m qa_tools.emulation --machine haswell --variant onnx-int8 --variant onnx-int8-fast --questions 4

Exit status 1 when a variant fails the comparison (``qa_tools.emulation.check``), 2 when the machine cannot be
emulated here (the message names what is missing). Progress on stderr. The model is the embedded one unless
``--model`` or $QA_EMULATION_MODEL names another directory of the same layout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from qa_tools.emulation import check, model, questions, run
from qa_tools.emulation.machines import MACHINES


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _timings(result: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in result.items() if key != "answers"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--machine", choices=sorted(MACHINES), required=True)
    parser.add_argument("--variant", action="append", required=True, help="repeat for several")
    parser.add_argument("--questions", type=int, default=20, help="how many short probe questions")
    parser.add_argument("--model", type=Path, help="a model directory (default: the embedded model)")
    parser.add_argument("--min-share", type=float, default=check.MIN_SHARE)
    args = parser.parse_args(argv)
    machine = MACHINES[args.machine]
    missing = machine.missing()
    if missing:
        _log(f"error: cannot emulate {machine.name} here; missing: {', '.join(missing)}")
        return 2
    started = time.perf_counter()
    served = model.prepared(model.source(args.model), log=_log)
    asked = questions.short_questions(args.questions)
    _log(f"native answers ({len(asked)} questions)")
    native = run.ask(None, served, args.variant, asked, log=_log)
    _log(f"emulated {machine.description}")
    emulated = run.ask(machine, served, args.variant, asked, log=_log)
    verdicts = [
        check.compare(
            machine.name,
            name,
            native["results"][name]["answers"],
            emulated["results"][name]["answers"],
            min_share=args.min_share,
        )
        for name in args.variant
    ]
    for verdict in verdicts:
        _log(("PASS " if verdict.passed else "FAIL ") + verdict.describe())
    report = {
        "machine": machine.name,
        "emulated_cpu": machine.description,
        "native_cpu": native["cpu"],
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_s": {"native": native["cpu_s"], "emulated": emulated["cpu_s"]},
        "timings": {
            name: {
                side: _timings(report["results"][name])
                for side, report in (("native", native), ("emulated", emulated))
            }
            for name in args.variant
        },
        "verdicts": [v.to_dict() for v in verdicts],
    }
    print(json.dumps(report, indent=2))
    return 0 if all(v.passed for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
