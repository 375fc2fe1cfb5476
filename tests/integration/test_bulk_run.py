"""``python -m qa_tools.bulk run``: the batch job on this machine, through the function's own path.

Planted models give known answers, so the SQuAD scores are exact; interruptions are injected (an exception
in the middle, a torn last line), never timed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import qa_tools.bulk.runner as runner
from handler.observability import logger
from handler.service import QAService
from qa_tools.bulk.__main__ import main
from qa_tools.bulk.items import read_lines
from qa_tools.bulk.runner import local_service, run
from qa_tools.tiny_models import PlantedModel
from tests.fixtures.bulk import ANSWER, PLANTED_QUESTIONS, PLANTED_SCORES, WITH_ANSWER, write_squad
from tests.fixtures.events import assert_same_answer, invoke

SQUAD2 = {"handle_impossible_answer": True}


@pytest.fixture
def bulk_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Path], QAService]]:
    """``local_service`` with the environment it writes restored afterwards, and the logger's stream too."""
    for name in ("MODEL_S3_URI", "MODEL_LOCAL_PATH", "QA_BACKEND", "QA_ONNX_PRECISION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MODEL_LOCAL_PATH", "unset")  # recorded, so the value local_service sets is undone
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "1")
    stream = logger.registered_handler.stream  # type: ignore[attr-defined]
    yield lambda model_dir: local_service(str(model_dir))
    logger.registered_handler.setStream(stream)  # type: ignore[attr-defined]


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(raw) for raw in path.read_text(encoding="utf-8").splitlines()]


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_squad_file_scores_exactly_on_planted_answers(
    planted_model: PlantedModel, bulk_service: Callable[[Path], QAService], tmp_path: Path
) -> None:
    squad = write_squad(tmp_path / "dev.json", PLANTED_QUESTIONS)
    output = tmp_path / "out.jsonl"
    report = run(
        squad, output, bulk_service(planted_model.path), fmt="squad", parameters=SQUAD2, score=True,
        progress=False,
    )  # fmt: skip
    assert (report.answered, report.skipped, report.bad_lines, sum(report.errors.values())) == (8, 0, 0, 0)
    results = {r["id"]: r for r in lines(output)}
    assert list(results) == [line.item["id"] for line in read_lines(squad, "squad")]  # file order, once each
    assert results["exact"]["answer"] == ANSWER
    assert WITH_ANSWER[results["exact"]["start"] : results["exact"]["end"]] == ANSWER
    assert results["missed"]["answer"] == "" and results["no-answer-1"]["answer"] == ""
    assert report.evaluation is not None
    for name, value in PLANTED_SCORES.items():
        assert report.evaluation[name] == pytest.approx(value), name
    assert report.evaluation["unscored"] == 0
    assert report.windows == 8 and report.bytes > 0 and report.limits(28.0) is not None


def test_results_are_the_functions_batch_results(
    bert_app: Any, tiny_bert_dir: Path, bulk_service: Callable[[Path], QAService], tmp_path: Path
) -> None:
    """Same model, same items: each result line is what the deployed function returns for the item."""
    items = [
        {"id": "a", "question": "What flows?", "context": "The river flows under an old stone bridge."},
        {"id": 2, "question": "Which city?", "context": "Paris is the capital of France.", "top_k": 2},
        {"question": "Who built it?", "context": "Engineers built the tower in 1889."},
        {"id": "bad", "question": "Missing context?"},
    ]
    parameters = {"max_answer_len": 4}
    output = tmp_path / "out.jsonl"
    run(jsonl(tmp_path / "in.jsonl", items), output, bulk_service(tiny_bert_dir), fmt="jsonl",
        parameters=parameters, progress=False)  # fmt: skip
    expected = invoke(bert_app, {"Items": items, "BatchInput": {"parameters": parameters}})
    assert lines(output) == [expected[0], expected[1], {"line": 3, **expected[2]}, expected[3]]
    assert expected[3]["error"]["type"] == "validation_error"


def test_resume_after_an_interruption_and_a_torn_line(
    planted_bert: PlantedModel,
    bulk_service: Callable[[Path], QAService],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    items = [{"id": f"q{i}", "question": "Where?", "context": WITH_ANSWER} for i in range(6)]
    items.insert(3, {"question": "No id here?", "context": WITH_ANSWER})
    source = jsonl(tmp_path / "in.jsonl", items)
    service = bulk_service(planted_bert.path)
    fresh = tmp_path / "fresh.jsonl"
    run(source, fresh, service, fmt="jsonl", parameters={}, progress=False)

    calls = {"n": 0}
    real_answer = runner.answer_batch

    def interrupted(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real_answer(*args)

    output = tmp_path / "out.jsonl"
    monkeypatch.setattr(runner, "answer_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):  # chunks of 2: [q0 q1] [q2 line-4] written, [q3 q4] interrupted
        run(source, output, service, fmt="jsonl", parameters={}, progress=False, chunk=2)
    monkeypatch.setattr(runner, "answer_batch", real_answer)
    assert len(lines(output)) == 4  # whole lines only: q0, q1, q2 and line 4 (no id)
    with output.open("ab") as f:  # a kill in the middle of a write
        f.write(b'{"id": "q4", "answ')

    report = run(source, output, service, fmt="jsonl", parameters={}, progress=False, chunk=2)

    assert report.repaired and (report.skipped, report.answered) == (4, 3)
    assert_same_answer(lines(output), lines(fresh))
    assert lines(output)[3]["line"] == 4


def test_bad_lines_are_reported_with_their_line_number(
    planted_bert: PlantedModel,
    bulk_service: Callable[[Path], QAService],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = {"id": "good", "question": "Where?", "context": WITH_ANSWER}
    rows: list[Any] = [
        good,
        "{not json",
        "",  # blank lines are skipped, but still counted as lines
        "[1, 2]",
        {"id": "no-context", "question": "Where?"},
        {**good, "context": "A different context, same id."},
        {"id": {"nested": True}, "question": "Where?", "context": WITH_ANSWER},
    ]
    output = tmp_path / "out.jsonl"
    report = run(jsonl(tmp_path / "in.jsonl", rows), output, bulk_service(planted_bert.path), fmt="jsonl",
                 parameters={}, progress=False)  # fmt: skip
    err = capsys.readouterr().err
    assert "line 2: not valid JSON" in err
    assert "line 4: an item must be a JSON object" in err
    assert "line 5: validation_error: context: field required" in err
    assert 'line 6: duplicate id "good"' in err
    assert "line 7: validation_error: id: must be a string or an integer" in err
    assert "line 3:" not in err
    assert (report.bad_lines, dict(report.errors), report.answered) == (3, {"validation_error": 2}, 3)
    written = lines(output)
    assert [r.get("id", r.get("line")) for r in written] == [
        "good",
        "no-context",
        7,
    ]  # no usable id: its line


def test_cli_run_convert_and_bad_arguments(
    planted_bert: PlantedModel,
    bulk_service: Callable[[Path], QAService],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bulk_service(planted_bert.path)  # only to register the environment clean-up; main loads its own
    squad = write_squad(tmp_path / "dev.json", PLANTED_QUESTIONS)
    converted = tmp_path / "dev.jsonl"
    assert main(["convert", str(squad), str(converted)]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == len(PLANTED_QUESTIONS)
    assert [line.item for line in read_lines(converted, "jsonl")] == [
        line.item for line in read_lines(squad, "squad")
    ]
    assert lines(converted)[-1]["answers"] == [] and lines(converted)[0]["answers"] == [ANSWER]

    args = ["run", str(converted), str(tmp_path / "out.jsonl"), "--model", str(planted_bert.path)]
    assert main([*args, "--eval", "--no-progress", "--parameters", json.dumps(SQUAD2)]) == 0
    summary = json.loads(capsys.readouterr().out)  # stdout is the summary alone: no logs, no metrics
    assert summary["answered"] == 8 and summary["eval"]["exact"] == pytest.approx(PLANTED_SCORES["exact"])
    assert set(summary["item_batcher_at_this_speed_for_28s"]) == {"MaxItemsPerBatch", "MaxInputBytesPerBatch"}

    assert main([*args, "--no-progress"]) == 0  # everything is done: all skipped
    assert json.loads(capsys.readouterr().out)["skipped_already_done"] == 8

    with pytest.raises(SystemExit) as bad:
        main([*args, "--parameters", '{"top_kk": 2}'])
    assert bad.value.code == 2 and "top_kk" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.jsonl"), str(tmp_path / "o.jsonl"), "--model",
                 str(planted_bert.path)]) == 2  # fmt: skip
    assert "missing.jsonl" in capsys.readouterr().err
    (tmp_path / "foreign.jsonl").write_text("hello\nworld\n")
    assert (
        main(["run", str(converted), str(tmp_path / "foreign.jsonl"), "--model", str(planted_bert.path)]) == 2
    )
    assert "not a results file" in capsys.readouterr().err


def test_cli_interrupt_says_how_to_resume(
    planted_bert: PlantedModel,
    bulk_service: Callable[[Path], QAService],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bulk_service(planted_bert.path)
    source = jsonl(tmp_path / "in.jsonl", [{"id": "a", "question": "Where?", "context": WITH_ANSWER}])

    def interrupt(*args: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "answer_batch", interrupt)
    code = main(
        ["run", str(source), str(tmp_path / "o.jsonl"), "--model", str(planted_bert.path), "--no-progress"]
    )
    assert code == 130 and "run the same command again to resume" in capsys.readouterr().err
