"""Bulk question answering: ``python -m qa_tools.bulk {run,submit,convert}`` (docs/bulk-jobs.md).

  run INPUT OUTPUT --model M       the job on this machine: JSONL or SQuAD-format INPUT, JSONL OUTPUT
  submit s3://B/in.jsonl s3://B/results/ --state-machine ARN
                                   the job on Step Functions Distributed Map (the template's BulkJobs)
  convert INPUT.json OUTPUT.jsonl  a SQuAD-format file as JSONL items (ids, gold answers) to submit

Results go to OUTPUT (run) or S3 (submit); stdout gets one JSON summary, stderr progress and problems.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from handler.api.batch import BatchDefaults
from handler.api.errors import describe_errors
from qa_tools.bulk.items import FORMATS, detect_format, read_lines

FUNCTION_TIMEOUT_S = 28.0  # template.yaml QaFunction Timeout: what a batch must fit in


def _log(message: str) -> None:
    print(message, file=sys.stderr)


def _parameters(text: str) -> dict[str, Any]:
    """``--parameters``: validated as ``BatchInput.parameters`` is, so a typo fails here, not in every batch."""
    try:
        raw = json.loads(text)
        return BatchDefaults.model_validate({"parameters": raw}).parameters.model_dump(exclude_unset=True)
    except ValueError as exc:
        reason = describe_errors(exc.errors()) if isinstance(exc, ValidationError) else str(exc)
        raise argparse.ArgumentTypeError(f"--parameters: {reason}") from None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m qa_tools.bulk",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1],
    )
    sub = parser.add_subparsers(dest="command", required=True)
    params = argparse.ArgumentParser(add_help=False)
    params.add_argument(
        "--parameters",
        type=_parameters,
        default={},
        help="API parameters for every item that does not set its own, e.g. '{\"handle_impossible_answer\": true}'",
    )
    params.add_argument("--no-progress", action="store_true", help="no progress bar")

    run = sub.add_parser("run", parents=[params], help="answer INPUT on this machine into OUTPUT (resumable)")
    run.add_argument("input", type=Path, help="JSONL items, or a SQuAD-format .json file")
    run.add_argument("output", type=Path, help="JSONL results; items already in it are skipped")
    run.add_argument("--model", required=True, help="model directory, or a published s3://bucket/prefix/")
    run.add_argument("--backend", choices=("torch", "onnx"), help="QA_BACKEND (default: torch)")
    run.add_argument("--precision", help="the backend's precision, e.g. int8 for onnx")
    run.add_argument("--format", choices=("auto", *FORMATS), default="auto", help="auto: .json = SQuAD")
    run.add_argument("--eval", action="store_true", help="SQuAD 2.0 EM/F1 of items with gold 'answers'")
    run.add_argument(
        "--timeout-s",
        type=float,
        default=FUNCTION_TIMEOUT_S,
        help="function timeout for the suggested ItemBatcher limits (default: the template's)",
    )

    submit = sub.add_parser("submit", parents=[params], help="run the job on Step Functions and follow it")
    submit.add_argument("input", help="s3://bucket/key.jsonl under the stack's BulkInputUri")
    submit.add_argument("output", help="s3://bucket/prefix/ under the stack's BulkResultsUri")
    submit.add_argument(
        "--state-machine",
        default=os.environ.get("QA_BULK_STATE_MACHINE"),
        help="the stack's BulkStateMachineArn output (default: $QA_BULK_STATE_MACHINE)",
    )
    submit.add_argument("--name", help="execution name (default: qa-bulk-<UTC time>-<random>)")
    submit.add_argument("--poll-s", type=float, default=5.0, help="seconds between progress checks")
    submit.add_argument("--no-wait", action="store_true", help="start it, print its ARN and return")

    convert = sub.add_parser("convert", help="SQuAD-format JSON -> JSONL items with ids and gold answers")
    convert.add_argument("input", type=Path)
    convert.add_argument("output", type=Path)
    return parser


def _run(args: argparse.Namespace) -> int:
    from qa_tools.bulk.runner import local_service, run  # torch and the model: only for this command

    fmt = detect_format(args.input) if args.format == "auto" else args.format
    service = local_service(args.model, args.backend, args.precision)
    try:
        report = run(
            args.input, args.output, service, fmt=fmt, parameters=args.parameters,
            score=args.eval, progress=not args.no_progress,
        )  # fmt: skip
    except KeyboardInterrupt:
        _log(f"interrupted; {args.output} holds whole lines only: run the same command again to resume")
        return 130
    summary: dict[str, Any] = {
        "input": report.input,
        "output": report.output,
        "lines": report.lines,
        "answered": report.answered,
        "skipped_already_done": report.skipped,
        "bad_lines": report.bad_lines,
        "item_errors": dict(report.errors),
        "repaired_torn_last_line": report.repaired,
        "answer_seconds": round(report.seconds, 3),
        "questions_per_s": round(report.questions_per_s, 2),
    }
    limits = report.limits(args.timeout_s)
    if limits is not None:
        summary["ms_per_window"] = round(1000 * report.seconds / report.windows, 1)
        summary["windows_per_item"] = round(report.windows / report.answered, 3)
        summary["bytes_per_window"] = round(report.bytes / report.windows)
        summary[f"item_batcher_at_this_speed_for_{args.timeout_s:g}s"] = {
            "MaxItemsPerBatch": limits.max_items_per_batch,
            "MaxInputBytesPerBatch": limits.max_input_bytes_per_batch,
        }
    if args.eval:
        summary["eval"] = report.evaluation
        if report.evaluation is None:
            _log("--eval: no item carries gold 'answers'")
        elif report.evaluation.get("NoAns_total") and not args.parameters.get("handle_impossible_answer"):
            _log(
                "--eval: unanswerable questions score 0 unless --parameters '{\"handle_impossible_answer\": true}'"
            )
    print(json.dumps(summary, indent=2))
    return 0


def _submit(args: argparse.Namespace) -> int:
    import boto3

    from qa_tools.bulk.submit import check_input, default_name, execution_input, follow, start

    if not args.state_machine:
        raise ValueError("--state-machine ARN (or QA_BULK_STATE_MACHINE) is required")
    payload = execution_input(args.input, args.output, args.parameters)
    check_input(boto3.client("s3"), payload["input"]["Bucket"], payload["input"]["Key"])
    client = boto3.client("stepfunctions")
    execution_arn = start(client, args.state_machine, payload, args.name or default_name())
    _log(f"started {execution_arn}")
    if args.no_wait:
        print(json.dumps({"execution": execution_arn, "status": "RUNNING"}, indent=2))
        return 0
    outcome = follow(client, execution_arn, poll_s=args.poll_s, progress=not args.no_progress)
    print(json.dumps(outcome.summary(), indent=2))
    if outcome.manifest:
        _log(f"results: {outcome.summary()['results']} (manifest {outcome.manifest})")
    _log(f"{outcome.status}; questions in failed batches: {outcome.failed}")
    return 0 if outcome.status == "SUCCEEDED" and not outcome.failed else 1


def _convert(args: argparse.Namespace) -> int:
    count = 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=args.output.parent, suffix=".part", delete=False) as tmp:
        try:
            for line in read_lines(args.input, "squad"):
                tmp.write(json.dumps(line.item, ensure_ascii=False) + "\n")
                count += 1
        except BaseException:
            os.unlink(tmp.name)
            raise
    os.replace(tmp.name, args.output)  # whole or nothing
    print(json.dumps({"input": str(args.input), "output": str(args.output), "items": count}, indent=2))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"run": _run, "submit": _submit, "convert": _convert}
    try:
        return commands[args.command](args)
    except (ValueError, OSError, RuntimeError) as exc:
        _log(f"error: {exc}")
        return 2
    except (ClientError, BotoCoreError) as exc:  # AWS said no (credentials, permissions, names)
        _log(f"error: AWS: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
