"""Reference side of ``pipeline_parity.py``: the classic transformers 4.x ``question-answering`` pipeline.

Runs under a *separate* interpreter with transformers 4.57 (the last line with the pipeline), so it must not
import ``handler`` or anything from this repository. Reads the cases JSON written by ``pipeline_parity.py``
and writes one result per case, in order::

    python bench/_reference_pipeline.py CASES.json OUT.json [--threads N] [--trim-whitespace]

CASES.json: ``{"model": DIR, "cases": [{"id", "question", "context", "params", "reference_question"?}]}``.
OUT.json: ``{"meta": {...versions...}, "results": [{"id", "answers": [...]} | {"id", "error": str}]}``.
Scores are written as Python floats (JSON keeps all 17 digits), so nothing is rounded before comparison.

``--trim-whitespace`` applies one deliberate difference of our engine to the pipeline (answers lose
surrounding whitespace; whitespace-only spans are dropped), so the caller can confirm that a mismatch is that
difference and nothing else. Without it this is the unmodified 4.57 pipeline.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any


def _load_pipeline(model_dir: str) -> tuple[Any, str]:
    """The pipeline as a 4.x user would build it, tolerating a tokenizer_config written by transformers 5.

    transformers 5 saves generic fast tokenizers as ``TokenizersBackend``, a class 4.x does not know; its 4.x
    name is ``PreTrainedTokenizerFast`` (same tokenizer.json, same special tokens and model_max_length).
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast, pipeline

    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
    except ValueError:
        tokenizer = PreTrainedTokenizerFast.from_pretrained(model_dir)
    qa = pipeline("question-answering", model=model_dir, tokenizer=tokenizer, device=-1)
    return qa, type(tokenizer).__name__


def _trim_whitespace(qa: Any) -> None:
    """Patches one pipeline instance: strip each span's characters; a span left empty adds to no answer.

    4.57 keeps e.g. "much " or "\\nFor" when a span ends on a lone byte-level space token or starts on a
    newline (and merges answers by exact lower-cased text); our engine trims them into "much" / "For".
    """
    original_postprocess, original_indices, original_answer = qa.postprocess, qa.get_indices, qa.get_answer
    context = {"text": ""}

    def postprocess(model_outputs: list[dict[str, Any]], **kwargs: Any) -> Any:
        context["text"] = model_outputs[0]["example"].context_text
        return original_postprocess(model_outputs, **kwargs)

    def get_indices(*args: Any) -> tuple[int, int]:
        start, end = original_indices(*args)
        text = context["text"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        return start, end

    def get_answer(answers: list[dict], target: str) -> dict | None:
        # An empty span: hand back a throwaway record, so postprocess adds its score to nothing.
        return {"score": 0.0} if not target else original_answer(answers, target)

    qa.postprocess, qa.get_indices, qa.get_answer = postprocess, get_indices, get_answer


def _as_list(output: Any) -> list[dict[str, Any]]:
    """The pipeline returns a bare dict for exactly one answer, else a list (possibly empty)."""
    answers = output if isinstance(output, list) else [output]
    return [
        {"answer": a["answer"], "score": float(a["score"]), "start": int(a["start"]), "end": int(a["end"])}
        for a in answers
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--trim-whitespace", action="store_true", help="apply our whitespace trimming")
    args = parser.parse_args(argv)

    import tokenizers
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    spec = json.loads(args.cases.read_text(encoding="utf-8"))
    qa, tokenizer_class = _load_pipeline(spec["model"])
    if args.trim_whitespace:
        _trim_whitespace(qa)

    results: list[dict[str, Any]] = []
    began = time.perf_counter()
    for case in spec["cases"]:
        question = case.get("reference_question") or case["question"]
        try:
            output = qa(question=question, context=case["context"], **case["params"])
            results.append({"id": case["id"], "answers": _as_list(output)})
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # a result to compare; tokenizers' Rust panics are BaseExceptions
            results.append({"id": case["id"], "error": f"{type(exc).__name__}: {exc}"})
    meta = {
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "torch": torch.__version__,
        "tokenizer_class": tokenizer_class,
        "threads": str(torch.get_num_threads()),
        "seconds": f"{time.perf_counter() - began:.1f}",
    }
    args.out.write_text(json.dumps({"meta": meta, "results": results}), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
