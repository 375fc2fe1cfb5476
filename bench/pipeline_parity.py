"""Parity check: our QAEngine against the classic transformers 4.57 ``question-answering`` pipeline.

Why: users and model cards are calibrated against that pipeline (removed in transformers 5), and our engine
re-implements it on ``tokenizers`` + numpy. This script builds (question, context, params) cases from
SQuAD-format data, runs the 4.57 pipeline in a subprocess under another interpreter (``--reference-python``,
see ``_reference_pipeline.py``) and our engine in-process, then compares every answer: identical text and
start/end, score within a relative tolerance. Run from the repository root, in the project venv::

    python bench/pipeline_parity.py --model models/minilm-l6-squad \\
        --data ../shared/data/xquad.en.json --reference-python /work/venv457/bin/python --limit 300
    # a random-weight RoBERTa-style model built on the fly (stresses ties and multi-window merging):
    python bench/pipeline_parity.py --tiny roberta --data ../shared/data/xquad.en.json \\
        --reference-python /work/venv457/bin/python --limit 300

``--model`` and ``--tiny`` may be repeated and combined. Exit status 1 if any mismatch is not a documented,
deliberate difference (see ``KNOWN`` and docs/pipeline-parity.md), so it can gate a change to the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `handler` and `tests` importable
    sys.path.insert(0, str(REPO))

from tokenizers import Tokenizer  # noqa: E402

from handler.engine import QAEngine, QAParams  # noqa: E402

REFERENCE_SCRIPT = Path(__file__).resolve().parent / "_reference_pipeline.py"
MAX_QUESTION_LEN = QAParams().max_question_len

# Deliberate differences (docs/pipeline-parity.md): such mismatches do not fail the run.
KNOWN_ZERO_SPANS = "known:zero-spans"
KNOWN_QUESTION_LEN = "known:question-len"
KNOWN_WHITESPACE = "known:whitespace"
KNOWN_QUESTION_CLS = "known:question-cls"
KNOWN_BLANK_CONTEXT = "known:blank-context"
KNOWN = (KNOWN_ZERO_SPANS, KNOWN_QUESTION_LEN, KNOWN_WHITESPACE, KNOWN_QUESTION_CLS, KNOWN_BLANK_CONTEXT)
BOTH_REJECTED = "both-rejected"
LEGEND = {
    "match": "same answers (text, start, end) in the same order, every score within the tolerance",
    BOTH_REJECTED: "both sides refused the request",
    KNOWN_ZERO_SPANS: "deliberate: 4.57 fills top_k with invalid score-0 spans (CLS, end < start); we don't",
    KNOWN_QUESTION_LEN: "deliberate: 4.57 ignores max_question_len with fast tokenizers; we truncate to it",
    KNOWN_WHITESPACE: "deliberate: we trim whitespace off answers; matches 4.57 given the same trimming",
    KNOWN_QUESTION_CLS: "deliberate: 4.57 lets spans start on a CLS token typed into the question; we don't",
    KNOWN_BLANK_CONTEXT: "deliberate: we reject a whitespace-only context (422); 4.57 answers it",
    "near-tie": "a different answer at some rank, with a score within the tolerance of the reference's",
    "answer-count": "a different number of answers",
    "different": "a different answer at some rank, with a clearly different score",
    "score>tol": "same answers, a score beyond the tolerance",
    "error:ours": "only our engine refused the request",
    "error:ref": "only the 4.57 pipeline refused the request",
}


@dataclass(frozen=True)
class Variant:
    name: str
    params: dict[str, Any]
    # paragraph | long (3 paragraphs of the article) | gold (the gold answer's text alone)
    context: str = "paragraph"
    long_question: bool = False  # question repeated past max_question_len tokens
    truncate_for_reference: bool = False  # give the reference the question as our engine truncates it


SEQ128 = {"max_seq_len": 128, "doc_stride": 32}
VARIANTS = (
    Variant("default", {}),
    Variant("top_k=3", {"top_k": 3}),
    Variant("impossible", {"handle_impossible_answer": True}),
    Variant("impossible+top_k=3", {"handle_impossible_answer": True, "top_k": 3}),
    Variant("seq128/stride32", SEQ128),
    Variant("seq128/stride32+top_k=3", {**SEQ128, "top_k": 3}),
    Variant("max_answer_len=5", {"max_answer_len": 5}),
    Variant("max_answer_len=5+top_k=3", {"max_answer_len": 5, "top_k": 3}),
    Variant("long", {}, context="long"),
    Variant("long+impossible+top_k=3", {"handle_impossible_answer": True, "top_k": 3}, context="long"),
    Variant("long+seq128/stride32+top_k=3", {**SEQ128, "top_k": 3}, context="long"),
    Variant("long+seq128/stride32+impossible", {**SEQ128, "handle_impossible_answer": True}, context="long"),
    Variant("long+seq128/stride32+top_k=10", {**SEQ128, "top_k": 10}, context="long"),
    Variant("gold-only context+top_k=10", {"top_k": 10}, context="gold"),
    Variant("long question (reference truncated)", {}, long_question=True, truncate_for_reference=True),
    Variant("long question", {}, long_question=True),
)


@dataclass(frozen=True)
class Case:
    id: str
    variant: str
    question: str
    context: str
    params: dict[str, Any]
    reference_question: str | None = None
    expected_deviation: str | None = None


@dataclass(frozen=True)
class Outcome:
    kind: str  # "match", BOTH_REJECTED, a KNOWN label, or a mismatch kind
    max_rel: float = 0.0  # largest relative score difference over answers with the same span
    max_abs: float = 0.0


@dataclass
class Report:
    model: str
    cases: int = 0
    windows: int = 0
    multi_window: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    by_variant: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)
    max_rel: float = 0.0
    max_abs: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)

    @property
    def failures(self) -> int:
        return sum(n for k, n in self.kinds.items() if k not in ("match", BOTH_REJECTED, *KNOWN))


# ----------------------------------------------------------------------------------------------- cases


def _squad_items(path: Path) -> list[tuple[list[str], int, dict[str, Any]]]:
    """(article paragraphs, paragraph index, qa) for every question, in file order."""
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    items = []
    for article in data:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for i, paragraph in enumerate(article["paragraphs"]):
            items.extend((paragraphs, i, qa) for qa in paragraph["qas"])
    return items


def _long_question(question: str, tok: Tokenizer) -> str:
    """The question repeated until it is longer than MAX_QUESTION_LEN tokens."""
    text = question
    while _question_tokens(text, tok) <= MAX_QUESTION_LEN:
        text = f"{text} {question}"
    return text


def _question_tokens(question: str, tok: Tokenizer) -> int:
    return len(tok.encode(question, add_special_tokens=False).ids)


def _engine_question(engine: QAEngine, question: str, context: str) -> str:
    """The question as our engine feeds it to the model (cut to max_question_len), read off its encoding."""
    enc = engine.encode([(question, context)]).windows[0].encoding
    end = max(off[1] for off, seq in zip(enc.offsets, enc.sequence_ids, strict=True) if seq == 0)
    return question[:end]


def _context(variant: Variant, paragraphs: list[str], i: int, qa: dict[str, Any]) -> str:
    if variant.context == "long":  # the question's paragraph with its neighbours: many windows
        lo = max(0, min(i - 1, len(paragraphs) - 3))
        return "\n\n".join(paragraphs[lo : lo + 3])
    if variant.context == "gold":  # a context of a few tokens: fewer valid spans than top_k asks for
        answers = qa.get("answers") or qa.get("plausible_answers") or []
        gold = answers[0]["text"] if answers else ""
        return gold.strip() or " ".join(paragraphs[i].split()[:3])
    return paragraphs[i]


EDGE_CONTEXT = "The Panthers defense gave up just 308 points, ranking sixth in the league."


def edge_cases(cls: str) -> list[Case]:
    """Hand-made inputs at the edges (``cls``: the model's CLS token text, which the tokenizer parses)."""
    q = "How many points did the defense give up?"
    rows = [
        ("cls-in-question", f"{cls} {q} {cls}", EDGE_CONTEXT, {"top_k": 10}, KNOWN_QUESTION_CLS),
        ("cls-in-context", q, f"{cls} The defense gave up {cls} 308 points.", {"top_k": 10}, None),
        ("blank-padded context", q, f"   \n  {EDGE_CONTEXT}  \n", {"top_k": 10}, None),
        ("blank-padded question", f"  {q.replace(' ', '   ')}  ", EDGE_CONTEXT, {"top_k": 10}, None),
        ("blank context", q, "   \n ", {}, KNOWN_BLANK_CONTEXT),
        ("one-character context", q, "7", {"top_k": 3, "handle_impossible_answer": True}, None),
        (
            "accents and CJK",
            "Où est le café?",
            "Le café naïve est à Zürich, près de la façade 東京.",
            {"top_k": 5},
            None,
        ),
    ]
    return [
        Case(f"edge/{name}", f"edge: {name}", qn, ctx, params, None, known)
        for name, qn, ctx, params, known in rows
    ]


def build_cases(data: Path, limit: int, engine: QAEngine, tokenizer_file: Path) -> list[Case]:
    """``limit`` questions spread evenly over the file; question n gets variant n mod len(VARIANTS); then
    the ``edge_cases``.

    Any question over max_question_len tokens (a long-question variant, or a small vocabulary) is where the
    two sides deliberately differ; the "reference truncated" variant hands the reference our cut instead.
    """
    items = _squad_items(data)
    step = max(1, len(items) // max(1, limit))
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_truncation()
    tok.no_padding()
    cases = []
    for n, (paragraphs, i, qa) in enumerate(items[::step][:limit]):
        variant = VARIANTS[n % len(VARIANTS)]
        context = _context(variant, paragraphs, i, qa)
        question = _long_question(qa["question"], tok) if variant.long_question else qa["question"]
        reference_question, expected = None, None
        if variant.truncate_for_reference:
            reference_question = _engine_question(engine, question, context)
        elif _question_tokens(question, tok) > MAX_QUESTION_LEN:
            expected = KNOWN_QUESTION_LEN
        cases.append(
            Case(
                id=f"{variant.name}/{qa['id']}",
                variant=variant.name,
                question=question,
                context=context,
                params=variant.params,
                reference_question=reference_question,
                expected_deviation=expected,
            )
        )
    cls_id = engine.tokenizer.cls_token_id
    cls = tok.id_to_token(cls_id) if cls_id is not None else None
    return cases + edge_cases(cls or "[CLS]")


# ------------------------------------------------------------------------------------------------ runs


def run_reference(
    python: str, model: Path, cases: list[Case], threads: int, *flags: str
) -> tuple[list[dict], dict]:
    """The 4.57 pipeline in its own interpreter: the two transformers versions cannot share a process."""
    with tempfile.TemporaryDirectory(prefix="parity-") as tmp:
        spec, out = Path(tmp) / "cases.json", Path(tmp) / "answers.json"
        payload = {"model": str(Path(model).resolve()), "cases": [c.__dict__ for c in cases]}
        spec.write_text(json.dumps(payload), encoding="utf-8")
        cmd = [python, str(REFERENCE_SCRIPT), str(spec), str(out), "--threads", str(threads), *flags]
        env = {**os.environ, "RUST_BACKTRACE": "0"}  # tokenizers panics on some inputs: one line, not 100
        subprocess.run(
            cmd, check=True, cwd=tmp, env=env
        )  # cwd: keep this repository off the reference's path
        result = json.loads(out.read_text(encoding="utf-8"))
    return result["results"], result["meta"]


def run_engine(engine: QAEngine, cases: list[Case], pairs_per_request: int) -> list[dict[str, Any]]:
    """Our answers, several pairs per request (as the API batches them) so windows of pairs share batches."""
    results: dict[str, dict[str, Any]] = {}
    groups: dict[str, list[Case]] = defaultdict(list)
    for case in cases:
        groups[json.dumps(case.params, sort_keys=True)].append(case)
    for group in groups.values():
        for i in range(0, len(group), pairs_per_request):
            chunk = group[i : i + pairs_per_request]
            try:
                answers = engine.answer([(c.question, c.context) for c in chunk], QAParams(**chunk[0].params))
            except Exception:  # find which pair failed: answer them one by one
                answers = None
            for j, case in enumerate(chunk):
                results[case.id] = _one(engine, case) if answers is None else _dicts(case, answers[j])
    return [results[c.id] for c in cases]


def _one(engine: QAEngine, case: Case) -> dict[str, Any]:
    try:
        return _dicts(case, engine.answer([(case.question, case.context)], QAParams(**case.params))[0])
    except Exception as exc:
        return {"id": case.id, "error": f"{type(exc).__name__}: {exc}"}


def _dicts(case: Case, answers: list[Any]) -> dict[str, Any]:
    return {"id": case.id, "answers": [a.to_dict() for a in answers]}


# --------------------------------------------------------------------------------------------- compare


def _span(a: dict[str, Any]) -> tuple[str, int, int]:
    return a["answer"], a["start"], a["end"]


def _rel(a: float, b: float) -> float:
    scale = max(abs(a), abs(b))
    return abs(a - b) / scale if scale else 0.0


def compare(case: Case, ref: dict[str, Any], ours: dict[str, Any], tol: float) -> Outcome:
    """Classifies one case; score differences are measured only between answers with the same span."""
    if "error" in ref and "error" in ours:
        return Outcome(BOTH_REJECTED)
    if "error" in ref or "error" in ours:
        kind = "error:ours" if "error" in ours else "error:ref"
    else:
        kind = _kind(ref["answers"], ours["answers"], tol)
    if kind != "match" and case.expected_deviation:
        return Outcome(case.expected_deviation)  # different inputs: their score differences mean nothing
    if kind.startswith("error:"):
        return Outcome(kind)
    r, o = ref["answers"], ours["answers"]
    if kind != "match" and _kind([a for a in r if a["score"] != 0.0], o, tol) == "match":
        kind = KNOWN_ZERO_SPANS
        r = [a for a in r if a["score"] != 0.0]  # the junk may share a span with our null answer
    ours_by_span = {_span(a): a["score"] for a in o}
    pairs = [(a["score"], ours_by_span[_span(a)]) for a in r if _span(a) in ours_by_span]
    max_rel = max((_rel(a, b) for a, b in pairs), default=0.0)
    max_abs = max((abs(a - b) for a, b in pairs), default=0.0)
    return Outcome(kind, max_rel, max_abs)


def _kind(r: list[dict[str, Any]], o: list[dict[str, Any]], tol: float) -> str:
    if len(r) != len(o):
        return "answer-count"
    for a, b in zip(r, o, strict=True):
        if _span(a) != _span(b):
            # Different answers of (nearly) the same score: the two sides broke a near-tie differently.
            return "near-tie" if _rel(a["score"], b["score"]) <= tol else "different"
        if _rel(a["score"], b["score"]) > tol:
            return "score>tol"
    return "match"


# ---------------------------------------------------------------------------------------------- report


def evaluate(model: Path, args: argparse.Namespace) -> Report:
    engine = QAEngine.load(model, "torch", max_batch_windows=args.max_batch_windows)
    cases = build_cases(args.data, args.limit, engine, model / "tokenizer.json")
    report = Report(model=str(model))
    began = time.perf_counter()
    refs, report.meta = run_reference(args.reference_python, model, cases, args.threads)
    report.seconds["reference"] = time.perf_counter() - began
    began = time.perf_counter()
    ours = run_engine(engine, cases, args.pairs_per_request)
    report.seconds["engine"] = time.perf_counter() - began
    outcomes = [
        compare(case, ref, mine, args.tolerance) for case, ref, mine in zip(cases, refs, ours, strict=True)
    ]
    _confirm_whitespace(model, args, cases, ours, outcomes)
    for case, ref, mine, outcome in zip(cases, refs, ours, outcomes, strict=True):
        if ref["id"] != case.id:
            raise RuntimeError(f"reference answered {ref['id']} for {case.id}")
        _count_windows(report, engine, case)
        report.kinds[outcome.kind] += 1
        report.by_variant[case.variant][outcome.kind] += 1
        report.max_rel = max(report.max_rel, outcome.max_rel)
        report.max_abs = max(report.max_abs, outcome.max_abs)
        if outcome.kind not in ("match", BOTH_REJECTED) and outcome.kind not in report.examples:
            report.examples[outcome.kind] = {"case": case.__dict__, "reference": ref, "ours": mine}
    report.cases = len(cases)
    return report


def _confirm_whitespace(
    model: Path, args: argparse.Namespace, cases: list[Case], ours: list[dict], outcomes: list[Outcome]
) -> None:
    """Re-runs unexplained mismatches on the pipeline with our whitespace trimming applied (in place).

    A case that then matches differs from 4.57 by that deliberate difference alone; its score difference is
    measured against the trimmed reference.
    """
    redo = [i for i, o in enumerate(outcomes) if o.kind not in ("match", BOTH_REJECTED, *KNOWN)]
    if not redo:
        return
    refs, _ = run_reference(
        args.reference_python, model, [cases[i] for i in redo], args.threads, "--trim-whitespace"
    )
    for i, ref in zip(redo, refs, strict=True):
        trimmed = compare(cases[i], ref, ours[i], args.tolerance)
        if trimmed.kind == "match":
            outcomes[i] = Outcome(KNOWN_WHITESPACE, trimmed.max_rel, trimmed.max_abs)


def _count_windows(report: Report, engine: QAEngine, case: Case) -> None:
    try:
        n = engine.encode([(case.question, case.context)], QAParams(**case.params)).num_windows
    except Exception:
        return
    report.windows += n
    report.multi_window += n > 1


def _short(case: dict[str, Any]) -> dict[str, Any]:
    """An example case with its long texts elided, for the printed report."""

    def cut(s: str) -> str:
        return s if len(s) <= 160 else f"{s[:100]} ... ({len(s)} chars)"

    return {k: cut(v) if isinstance(v, str) else v for k, v in case.items() if v is not None}


def print_report(report: Report, tol: float) -> None:
    print(f"\n=== {report.model}")
    print("reference: " + ", ".join(f"{k} {v}" for k, v in report.meta.items()))
    print(f"time: reference {report.seconds['reference']:.1f}s, engine {report.seconds['engine']:.1f}s")
    print(f"cases {report.cases}, windows {report.windows}, multi-window cases {report.multi_window}")
    kinds = sorted(report.kinds, key=lambda k: (k != "match", k))
    width = max(len(v) for v in report.by_variant)
    print(f"\n{'variant':<{width}}  cases  " + "  ".join(kinds))
    for variant, counts in report.by_variant.items():
        cells = "  ".join(f"{counts.get(k, 0):>{len(k)}}" for k in kinds)
        print(f"{variant:<{width}}  {sum(counts.values()):>5}  {cells}")
    print(f"{'all':<{width}}  {report.cases:>5}  " + "  ".join(f"{report.kinds[k]:>{len(k)}}" for k in kinds))
    print(f"\nmax score difference (same span): relative {report.max_rel:.3g}, absolute {report.max_abs:.3g}"
          f" (tolerance {tol:g} relative)")  # fmt: skip
    print(f"unexplained mismatches: {report.failures}")
    for kind in kinds:
        print(f"  {kind:<20} {LEGEND.get(kind, '')}")
    for kind, ex in report.examples.items():
        print(f"\n--- example: {kind}")
        print(json.dumps(_short(ex["case"]), ensure_ascii=False))
        print(
            "reference:",
            json.dumps(ex["reference"].get("answers", ex["reference"].get("error")), ensure_ascii=False),
        )
        print(
            "ours:     ", json.dumps(ex["ours"].get("answers", ex["ours"].get("error")), ensure_ascii=False)
        )


def _tiny_model(kind: str, root: Path) -> Path:
    from qa_tools.tiny_models import build_tiny_model

    return build_tiny_model(root / f"tiny-{kind}", kind)  # type: ignore[arg-type]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, action="append", default=[], help="model directory (repeatable)")
    tiny_help = "also a random-weight tiny model of this kind, built on the fly (repeatable)"
    p.add_argument("--tiny", choices=("bert", "roberta"), action="append", default=[], help=tiny_help)
    p.add_argument("--data", type=Path, required=True, help="SQuAD-format JSON")
    p.add_argument(
        "--reference-python", required=True, type=os.path.abspath,  # the reference runs in a temporary cwd
        help="interpreter with transformers 4.57 + torch (bash scripts/make-reference-venv.sh: .venv-ref/bin/python)",
    )  # fmt: skip
    p.add_argument("--limit", type=int, default=300, help="number of cases (one question each)")
    p.add_argument("--tolerance", type=float, default=1e-4, help="relative score tolerance")
    p.add_argument("--threads", type=int, default=0, help="torch threads on both sides (0: torch's default)")
    p.add_argument("--max-batch-windows", type=int, default=8, help="our engine's windows per forward pass")
    p.add_argument("--pairs-per-request", type=int, default=4, help="pairs per engine.answer call")
    p.add_argument("--json", type=Path, help="also write the full reports (every example) here")
    args = p.parse_args(argv)
    if not args.model and not args.tiny:
        p.error("give at least one --model or --tiny")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    reports = []
    with tempfile.TemporaryDirectory(prefix="parity-models-") as tmp:
        models = [*args.model, *(_tiny_model(kind, Path(tmp)) for kind in args.tiny)]
        for model in models:
            report = evaluate(model.resolve(), args)
            print_report(report, args.tolerance)
            reports.append(report)
    if args.json:
        args.json.write_text(
            json.dumps([r.__dict__ for r in reports], indent=1, default=str), encoding="utf-8"
        )
    return 1 if any(r.failures for r in reports) else 0


if __name__ == "__main__":
    sys.exit(main())
