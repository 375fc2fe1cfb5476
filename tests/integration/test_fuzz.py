"""Property-based fuzzing of ``lambda_handler``: every event shape, malformed and absurd input, injected faults.

Invariants, checked on every generated event:

* nothing escapes: the handler returns, and what it returns is strict JSON (no NaN) Lambda can serialise;
* HTTP shapes return ``{"statusCode": int, "body": JSON}``; every error is ``{"error": {type, message,
  status}}`` with the same status; a client mistake never gets a 5xx;
* direct invokes return answers or ``{"error": {...}}`` with a 4xx status;
* a 200 from /predict answers what was asked: one item per input, ``answer == context[start:end]``;
* the next valid request still returns the reference answer computed once at start.

The default suite runs a few hundred examples; the ``slow`` target runs at least 10,000 events:
``python -m pytest -m slow -s tests/integration/test_fuzz.py``.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import string
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa_tools.tiny_models import build_tiny_model
from tests.fixtures.backends import FaultyBackend, one_thread
from tests.fixtures.events import header, load
from tests.fixtures.lambda_env import FakeContext, init_app

# Small limits make every limit reachable with cheap events; 96 positions keep windows cheap.
FUZZ_ENV = {
    "MAX_BODY_BYTES": "50000",
    "MAX_CONTEXT_CHARS": "5000",
    "MAX_BATCH_SIZE": "4",
    "MAX_WINDOWS": "12",
    # An injected fault must reach the backend: a cached answer never calls it (tests/unit/test_answer_cache.py
    # and test_app cover the cache itself).
    "ANSWER_CACHE_ENTRIES": "0",
}
MODEL_POSITIONS = 96
SHAPES = ("rest", "http", "url")
REFERENCE = {"question": "Which city is the capital?", "context": "Paris is the capital of France."}
TEMPLATES = {  # realistic events of each HTTP shape, from events/
    "rest": load("rest-predict.json"),
    "http": load("http-api-predict.json"),
    "url": load("function-url-predict.json"),
}

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example]
# database=None: no .hypothesis/ directory in the tree; a failure prints its reproduction blob instead.
FAST = settings(max_examples=25, deadline=None, suppress_health_check=_HEALTH, database=None, print_blob=True)
SLOW_TOTAL = 10_000
SLOW_MARGIN = 1.08  # a strategy may end a little short of max_examples (exhausted or rejected draws)


# ---------------------------------------------------------------------------------------------- strategies


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """``one_of`` with weights: Hypothesis picks ``one_of`` branches without regard to repeats."""
    table = [strategy for weight, strategy in options for _ in range(weight)]
    return st.sampled_from(table).flatmap(lambda strategy: strategy)


EMOJI = ("😀", "🚀", "👩\u200d👩\u200d👧\u200d👦", "🏳\ufe0f\u200d🌈", "\U0001f1eb\U0001f1f7")  # ZWJ, flag
BIDI = ("\u202e", "\u202d", "\u200f", "\u200e", "\u2066", "\u2069")
RIGHT_TO_LEFT = ("שלום", "\u0645\u0631\u062d\u0628\u0627", "\u0645\u064e\u0631", "ܐܠܗܐ")  # with diacritics
CONTROLS = ("\x00", "\x01", "\x07", "\x1b", "\t", "\n", "\r", "\x7f", "\x85", "\u2028", "\u2029")
INVISIBLE = ("\u200b", "\ufeff", "\u00a0", "\u3000", "\u0301", "\u0300" * 8, "\u20db\u20dc")
ODD = ("ﬁ", "ß", "İ", "東京", "Ⅻ", "\ufffd", "\U0010ffff")  # case folding, CJK, replacement, last code point
WORDS = ("Paris", "capital", "the", " ", "  ", ".")
SURROGATES = ("\ud800", "\udfff")  # lone: reach the handler through JSON escapes ("\\ud800")
SPECIAL_CHARS = [*EMOJI, *BIDI, *RIGHT_TO_LEFT, *CONTROLS, *INVISIBLE, *ODD, *WORDS]
CHUNK = st.one_of(st.characters(), st.sampled_from(SPECIAL_CHARS))
TEXT = st.lists(CHUNK, max_size=40).map("".join)
SURROGATE_TEXT = st.builds(lambda a, s, b: a + s + b, TEXT, st.sampled_from(SURROGATES), TEXT)
HUGE_UNITS = ["a ", "word ", "😀", "\u202e\u0645\u0631\u062d\u0628\u0627 ", "\x00", " ", "東京 "]
HUGE_TEXT = st.builds(lambda unit, n: unit * n, st.sampled_from(HUGE_UNITS), st.integers(500, 150_000))
# Mostly texts a tokenizer must cope with; sometimes too long for a limit, or not valid Unicode at all.
QA_TEXT = weighted(
    (8, st.lists(CHUNK, min_size=1, max_size=40).map("".join)), (1, HUGE_TEXT), (1, SURROGATE_TEXT)
)

JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    TEXT,
    SURROGATE_TEXT,
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)

PARAM_NAMES = (
    "top_k",
    "handle_impossible_answer",
    "max_answer_len",
    "max_seq_len",
    "doc_stride",
    "max_question_len",
)
SANE_PARAMS = {
    "top_k": st.integers(1, 5),
    "handle_impossible_answer": st.booleans(),
    "max_answer_len": st.integers(1, 30),
    "max_seq_len": st.integers(8, MODEL_POSITIONS),
    "doc_stride": st.integers(0, 48),
    "max_question_len": st.integers(1, 64),
}
ABSURD_INT = st.one_of(
    st.integers(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 7, 8, 50, 51, 95, 96, 97, 4096, 4097, 2**31, 2**63, 10**30]),
)
ABSURD = st.one_of(ABSURD_INT, st.floats(), st.just("3"), st.just([1]), JSON_VALUES)
PARAMS = st.fixed_dictionaries(
    {}, optional={name: weighted((6, SANE_PARAMS[name]), (1, ABSURD)) for name in PARAM_NAMES}
)
QA_ITEM = st.fixed_dictionaries({"question": QA_TEXT, "context": QA_TEXT})


@st.composite
def valid_shaped_payloads(draw: st.DrawFn) -> dict[str, Any]:
    """Requests in every accepted form; texts and parameters may still be absurd."""
    form = draw(st.sampled_from(["flat", "inputs", "batch"]))
    params = draw(PARAMS)
    if form == "flat":
        return {**draw(QA_ITEM), **params}
    inputs: Any = draw(QA_ITEM) if form == "inputs" else draw(st.lists(QA_ITEM, min_size=1, max_size=6))
    return {"inputs": inputs, **({"parameters": params} if params or draw(st.booleans()) else {})}


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path into a JSON value (including the root)."""
    yield prefix
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*prefix, index))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.copy(value)
    copied[path[0]] = _replace(value[path[0]], path[1:], new)
    return copied


def _delete(value: Any, path: tuple[Any, ...]) -> Any:
    if len(path) == 1:
        copied = copy.copy(value)
        del copied[path[0]]
        return copied
    return _replace(value, path[:1], _delete(value[path[0]], path[1:]))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[Any]) -> Any:
    """A value with one field (at any depth) given a wrong type, deleted, added to, or nested deeply."""
    value = draw(base)
    path = draw(st.sampled_from(list(_paths(value))))
    action = draw(st.sampled_from(["wrong_type", "delete", "extra", "nest"]))
    if action == "delete" and path:
        return _delete(value, path)
    if action == "extra":
        target = _get(value, path)
        if isinstance(target, dict):
            return _replace(value, path, {**target, draw(TEXT): draw(JSON_VALUES)})
    if action == "nest":
        depth = draw(st.integers(1, 600))
        return _replace(value, path, json.loads("[" * depth + json.dumps(_get(value, path)) + "]" * depth))
    return _replace(value, path, draw(JSON_VALUES))


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


PAYLOADS = weighted((4, valid_shaped_payloads()), (2, mutated(valid_shaped_payloads())))
JUNK = st.one_of(
    JSON_VALUES, st.dictionaries(st.sampled_from([*PARAM_NAMES, "question", "context", "inputs"]), ABSURD)
)


@dataclass(frozen=True)
class Case:
    """One generated invocation: the event, and what the checker needs to know about it."""

    shape: str  # rest | http | url | direct | batch
    event: Any
    payload: Any = None  # the request inside, when the body is well-formed JSON (to check answers)
    route: str = "/predict"
    client: bool = True  # only fields a caller controls were varied: a 5xx would be a bug
    remaining_ms: int = 20_000


def _encode_payload(payload: Any, b64: bool, ascii_only: bool) -> str:
    text = json.dumps(payload, ensure_ascii=ascii_only)
    if b64:
        return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode("ascii")
    return text


def _deep_object(d: st.DrawFn, _: str) -> tuple[str, bool]:
    depth = d(st.integers(1, 5000))
    return '{"inputs": ' + '{"a": ' * depth + "1" + "}" * d(st.sampled_from([depth + 1, 3])), False


def _reencoded(d: st.DrawFn, s: str) -> tuple[str, bool]:
    codec = d(st.sampled_from(["utf-16", "utf-32", "cp1252", "latin-1"]))
    return base64.b64encode(s.encode(codec, "replace")).decode(), True


BrokenBody = Callable[[st.DrawFn, str], tuple[str | None, bool]]
BROKEN_BODIES: dict[str, BrokenBody] = {
    "truncated": lambda d, s: (s[: d(st.integers(0, max(len(s) - 1, 0)))], False),
    "trailing_junk": lambda d, s: (s + d(st.sampled_from(["}", "]", ",", "x", " garbage", "\x00"])), False),
    "byte_order_mark": lambda d, s: ("\ufeff" + s, False),
    "not_base64": lambda d, s: (d(TEXT), True),
    "bad_base64": lambda d, s: (d(st.sampled_from(["not base64!", "====", "e30", "e30=x", "ab\ncd"])), True),
    "random_bytes": lambda d, s: (base64.b64encode(d(st.binary(max_size=200))).decode(), True),
    "other_encoding": _reencoded,
    "invalid_utf8": lambda d, s: (base64.b64encode(b"\xff\xfe" + s.encode() + b"\xc3\x28").decode(), True),
    "deep_array": lambda d, s: ("[" * d(st.integers(1, 200_000)) + "]" * d(st.integers(0, 3)), False),
    "deep_object": _deep_object,
    "giant_integer": lambda d, s: (
        f'{{"question": "q", "context": "c", "top_k": {"9" * d(st.integers(1, 20_000))}}}',
        False,
    ),
    "odd_number": lambda d, s: (
        f'{{"question": "q", "context": "c", "top_k": {d(st.sampled_from(["NaN", "-Infinity", "1e999", "1.0", "true"]))}}}',
        False,
    ),
    "duplicate_keys": lambda d, s: (
        '{"question": "a", "question": "b", "context": "c", "context": 5}',
        False,
    ),
    "tiny": lambda d, s: (d(st.sampled_from(["", " ", "null", "[]", "{}", '"q"', "0", "\n", "{,}"])), False),
    "text": lambda d, s: (d(TEXT), False),
    "absent": lambda d, s: (None, False),
}
CONTENT_TYPES = [
    "application/json",
    "application/json; charset=utf-8",
    "APPLICATION/JSON",
    "application/problem+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "",
    ";",
    "application/json; charset=latin-1",
]
METHODS = ["POST", "GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD", "post", "TRACE", "FOO"]
PATHS = [
    "/predict",
    "/health",
    "/openapi.json",
    "/",
    "/predict/",
    "/PREDICT",
    "/predict/../health",
    "//predict",
]


def _http_event(
    shape: str,
    body: str | None,
    b64: bool,
    *,
    method: str = "POST",
    path: str = "/predict",
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> dict[str, Any]:
    """A REST v1, HTTP API v2 or function URL event as API Gateway / Lambda would build it."""
    headers = {"content-type": "application/json"} if headers is None else headers
    if shape == "rest":
        event = copy.deepcopy(TEMPLATES["rest"])
        event.update(body=body, isBase64Encoded=b64, httpMethod=method, path=path, resource=path)
        event["headers"] = headers or None
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()} or None
        event["queryStringParameters"] = query or None
        event["multiValueQueryStringParameters"] = {k: [v] for k, v in (query or {}).items()} or None
        event["requestContext"].update(httpMethod=method, resourcePath=path, path=f"/prod{path}")
        return event
    event = copy.deepcopy(TEMPLATES[shape])
    event.update(isBase64Encoded=b64, rawPath=path, rawQueryString=urlencode(query or {}))
    event["headers"] = {k.lower(): v for k, v in headers.items()}
    if body is None:
        event.pop("body", None)
    else:
        event["body"] = body
    if query:
        event["queryStringParameters"] = query
    event["requestContext"]["http"].update(method=method, path=path)
    if shape == "http":
        event["routeKey"] = event["requestContext"]["routeKey"] = f"{method} {path}"
    return event


@st.composite
def http_payload_cases(draw: st.DrawFn, shape: str) -> Case:
    """Well-formed JSON bodies holding valid, mutated or absurd requests."""
    payload = draw(weighted((5, PAYLOADS), (1, JUNK)))
    b64 = draw(st.booleans())
    body = _encode_payload(payload, b64, ascii_only=not b64 or draw(st.booleans()))
    remaining = draw(st.one_of(st.just(20_000), st.integers(0, 3_000)))
    return Case(shape, _http_event(shape, body, b64), payload=payload, remaining_ms=remaining)


@st.composite
def http_broken_body_cases(draw: st.DrawFn, shape: str) -> Case:
    """Unreadable bodies: truncated, invalid base64 or UTF-8, deeply nested, giant numbers, non-JSON."""
    source = json.dumps(draw(PAYLOADS))
    body, b64 = BROKEN_BODIES[draw(st.sampled_from(sorted(BROKEN_BODIES)))](draw, source)
    return Case(shape, _http_event(shape, body, b64))


@st.composite
def http_route_cases(draw: st.DrawFn, shape: str) -> Case:
    """Methods, paths, query strings and headers a caller chooses, around a valid body."""
    method = draw(st.sampled_from(METHODS))
    path = draw(st.one_of(st.sampled_from(PATHS), st.text(min_size=1, max_size=30).map(lambda p: "/" + p)))
    # What API Gateway passes on is valid Unicode: st.text() (no lone surrogates), not TEXT.
    names = st.text(string.ascii_letters + "-", min_size=1, max_size=20)
    headers = draw(st.dictionaries(names, st.text(max_size=30), max_size=4))
    if draw(st.booleans()):
        headers["Content-Type"] = draw(st.one_of(st.sampled_from(CONTENT_TYPES), st.text(max_size=30)))
    query = draw(st.dictionaries(st.text(max_size=10), st.text(max_size=30), max_size=3))
    payload = draw(st.one_of(st.just(REFERENCE), valid_shaped_payloads()))
    b64 = draw(st.booleans())
    event = _http_event(
        shape,
        _encode_payload(payload, b64, True),
        b64,
        method=method,
        path=path,
        headers=headers,
        query=query,
    )
    return Case(shape, event, payload=payload, route=path)


@st.composite
def direct_cases(draw: st.DrawFn) -> Case:
    """Direct invokes: the event is the request, whatever JSON value the caller sent."""
    payload = draw(weighted((5, PAYLOADS), (1, JUNK)))
    return Case(
        "direct", payload, payload=payload, remaining_ms=draw(st.sampled_from([20_000, 20_000, 400, 0]))
    )


BATCH_ITEM = st.fixed_dictionaries(
    {"question": QA_TEXT, "context": QA_TEXT},
    optional={
        "id": st.one_of(TEXT, st.integers(), JSON_VALUES),
        "answers": JSON_VALUES,
        **{name: weighted((6, SANE_PARAMS[name]), (1, ABSURD)) for name in PARAM_NAMES},
    },
)


@st.composite
def batch_cases(draw: st.DrawFn) -> Case:
    """Distributed Map batches: items valid, absurd or junk; BatchInput likewise; sometimes no time left."""
    items = draw(st.lists(weighted((6, BATCH_ITEM), (1, mutated(BATCH_ITEM)), (1, JSON_VALUES)), max_size=6))
    event: dict[str, Any] = {"Items": items}
    if draw(st.booleans()):
        event["BatchInput"] = draw(
            weighted((4, st.fixed_dictionaries({"parameters": PARAMS})), (1, JSON_VALUES))
        )
    if draw(st.integers(0, 9)) == 0:
        event = draw(mutated(st.just(event)))
    remaining = draw(st.sampled_from([20_000, 20_000, 400, 0]))
    return Case("batch", event, payload=event, remaining_ms=remaining)


@st.composite
def envelope_cases(draw: st.DrawFn) -> Case:
    """Events API Gateway would never send (fields of the envelope itself corrupted): still no escape."""
    shape = draw(st.sampled_from(SHAPES))
    event = _http_event(shape, json.dumps(REFERENCE), False)
    victims = [p for p in _paths(event) if p and p[0] != "body" and len(p) <= 3]
    path = draw(st.sampled_from(victims))
    event = _delete(event, path) if draw(st.booleans()) else _replace(event, path, draw(JSON_VALUES))
    return Case(shape, event, client=False)


TARGETS: dict[str, st.SearchStrategy[Case]] = {
    **{f"{shape}-payload": http_payload_cases(shape) for shape in SHAPES},
    **{f"{shape}-broken-body": http_broken_body_cases(shape) for shape in SHAPES},
    **{f"{shape}-route": http_route_cases(shape) for shape in SHAPES},
    "direct-payload": direct_cases(),
    "direct-payload-2": direct_cases(),
    "batch": batch_cases(),
    "envelope": envelope_cases(),
}


# ---------------------------------------------------------------------------------------------- invariants


def _strict_json(text: str) -> Any:
    def reject(constant: str) -> Any:
        raise ValueError(f"non-standard JSON constant {constant}")

    return json.loads(text, parse_constant=reject)


def _request_view(payload: dict[str, Any]) -> tuple[list[tuple[str, str]], bool, int]:
    """(pairs, is_batch, top_k) of a request the handler accepted."""
    if "inputs" in payload:
        items = payload["inputs"]
        batch = isinstance(items, list)
        params = payload.get("parameters") or {}
        items = items if batch else [items]
    else:
        items, batch, params = [payload], False, payload
    return [(i["question"], i["context"]) for i in items], batch, params.get("top_k", 1)


def check_answers(result: Any, payload: Any) -> None:
    """A 200's body answers the request that was sent: shape, offsets into the context, scores."""
    pairs, batch, top_k = _request_view(payload)
    per_pair = result if batch else [result]
    assert isinstance(per_pair, list) and len(per_pair) == len(pairs)
    for found, (_, context) in zip(per_pair, pairs, strict=True):
        items = [found] if top_k == 1 else found
        assert isinstance(items, list) and len(items) <= top_k
        scores = [item["score"] for item in items]
        assert scores == sorted(scores, reverse=True)
        for item in items:
            assert set(item) == {"answer", "score", "start", "end"}
            assert 0 <= item["start"] <= item["end"] <= len(context)
            assert context[item["start"] : item["end"]] == item["answer"]
            assert math.isfinite(item["score"]) and item["score"] >= 0.0


def check_error(body: Any, status: int) -> None:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"type", "message", "status"} and error["status"] == status
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["message"], str) and "Traceback" not in error["message"]


def check_http(result: Any, case: Case) -> int:
    assert isinstance(result, dict) and isinstance(result.get("statusCode"), int), result
    status = result["statusCode"]
    assert 200 <= status < 600
    assert isinstance(result["body"], str)
    assert header(result, "Content-Type") == "application/json"
    assert result.get("isBase64Encoded") is False
    body = _strict_json(result["body"])
    if case.client:
        assert status < 500, (status, body)
    if status >= 400:
        check_error(body, status)
    elif case.route == "/predict" and case.payload is not None:
        check_answers(body, case.payload)
    return status


def check_direct(result: Any, case: Case) -> int:
    json.dumps(result, allow_nan=False)
    if isinstance(result, dict) and "error" in result:
        check_error(result, result["error"]["status"])
        status = result["error"]["status"]
        assert status < 500 or not case.client, result
        return status
    if case.payload is not None:
        check_answers(result, case.payload)
    return 200


def check_batch(result: Any, case: Case) -> int:
    """One result per item, in order; an item fails alone; only running out of time may be a 5xx."""
    if isinstance(result, dict):  # the whole batch refused
        check_error(result, result["error"]["status"])
        assert result["error"]["status"] < 500, result
        return result["error"]["status"]
    items = case.event["Items"]
    assert isinstance(result, list) and len(result) == len(items)
    parameters = (case.event.get("BatchInput") or {}).get("parameters") or {}
    for got, item in zip(result, items, strict=True):
        valid_id = isinstance(item, dict) and type(item.get("id")) in (str, int)
        assert ("id" in got) == valid_id and (not valid_id or got["id"] == item["id"])
        if "error" in got:
            assert set(got) <= {"id", "error"}
            check_error({"error": got["error"]}, got["error"]["status"])
            assert got["error"]["status"] < 500 or got["error"]["type"] == "out_of_time", got
            continue
        answer = {k: v for k, v in got.items() if k != "id"}
        top_k = item.get("top_k", parameters.get("top_k", 1))
        check_answers(answer["answers"] if top_k != 1 else answer, {**item, "top_k": top_k})
    return 200


@dataclass
class Fuzzer:
    """The handler under test, its reference answers and the counts of what was tried."""

    app: ModuleType
    reference: dict[str, Any] = field(default_factory=dict)  # shape -> expected answer
    events: int = 0
    faults: int = 0
    statuses: Counter[int] = field(default_factory=Counter)

    def invoke(self, event: Any, remaining_ms: int = 20_000) -> Any:
        with redirect_stdout(StringIO()):  # EMF metrics: one JSON line per invocation
            return self.app.lambda_handler(event, FakeContext(remaining_ms=remaining_ms))

    def reference_event(self, shape: str) -> Any:
        return dict(REFERENCE) if shape == "direct" else _http_event(shape, json.dumps(REFERENCE), False)

    def answer(self, shape: str) -> Any:
        result = self.invoke(self.reference_event(shape))
        return result if shape == "direct" else _strict_json(result["body"])

    def check(self, case: Case) -> None:
        self.events += 1
        result = self.invoke(case.event, case.remaining_ms)
        json.dumps(result, allow_nan=False)
        checker = check_direct if case.shape == "direct" or "statusCode" not in result else check_http
        self.statuses[(check_batch if case.shape == "batch" else checker)(result, case)] += 1
        shape = case.shape if case.client and case.shape in self.reference else "direct"
        assert self.answer(shape) == self.reference[shape], "a valid request no longer gets its answer"

    def report(self, label: str, events: int, statuses: Counter[int]) -> str:
        counts = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        return f"[fuzz] {label}: {events} events; statuses {counts}"


def run_target(fuzzer: Fuzzer, name: str, config: settings) -> int:
    """Runs one strategy under ``config``, prints what it tried; returns how many events it generated."""
    events, statuses = fuzzer.events, Counter(fuzzer.statuses)

    @config
    @given(case=TARGETS[name])
    def prop(case: Case) -> None:
        fuzzer.check(case)

    prop()
    generated = fuzzer.events - events
    print(fuzzer.report(name, generated, fuzzer.statuses - statuses), flush=True)
    return generated


@pytest.fixture(scope="module")
def fuzz_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(
        tmp_path_factory.mktemp("fuzz-bert"), "bert", max_position_embeddings=MODEL_POSITIONS
    )


@pytest.fixture(scope="module")
def fuzzer(fuzz_model_dir: Path) -> Iterator[Fuzzer]:
    with pytest.MonkeyPatch.context() as mp, one_thread():
        fuzzer = Fuzzer(init_app(mp, MODEL_LOCAL_PATH=str(fuzz_model_dir), **FUZZ_ENV))
        fuzzer.reference = {shape: fuzzer.answer(shape) for shape in (*SHAPES, "direct")}
        check_answers(fuzzer.reference["direct"], REFERENCE)
        assert all(answer == fuzzer.reference["direct"] for answer in fuzzer.reference.values())
        yield fuzzer
    sys.modules.pop("handler.app", None)


# ---------------------------------------------------------------------------------------------- faults


BACKEND_FAULTS = ("raises", "out_of_memory", "missing_rows", "wrong_rank")
FAULTS = (*BACKEND_FAULTS, "tokenizer_raises", "model_unavailable", "no_time_left")


@contextmanager
def injected(fuzzer: Fuzzer, fault: str) -> Iterator[int]:
    """Installs ``fault``; yields the remaining time to invoke with. Removed on exit, whatever happens."""
    engine = fuzzer.app.SERVICE.engine
    if fault in BACKEND_FAULTS:
        with mock.patch.object(engine, "backend", FaultyBackend(engine.backend, fault)):
            yield 20_000
    elif fault == "tokenizer_raises":
        with mock.patch.object(engine, "encode", side_effect=RuntimeError("tokenizer failure")):
            yield 20_000
    elif fault == "model_unavailable":
        with mock.patch.object(fuzzer.app.SERVICE, "engine", None):
            yield 20_000
    else:  # less time left than the safety margin: refused before any inference
        yield 1


EXPECTED_FAULT_STATUS = {"model_unavailable": 503, "no_time_left": 413}


@st.composite
def fault_cases(draw: st.DrawFn) -> tuple[str, Case]:
    shape = draw(st.sampled_from([*SHAPES, "direct"]))
    payload = draw(st.one_of(st.just(REFERENCE), valid_shaped_payloads()))
    event = dict(payload) if shape == "direct" else _http_event(shape, json.dumps(payload), False)
    return draw(st.sampled_from(FAULTS)), Case(shape, event, payload=payload, client=False)


def run_faults(fuzzer: Fuzzer, config: settings) -> int:
    """Injects generated faults under generated requests; prints and returns how many."""
    before, outcomes = fuzzer.faults, Counter[str]()

    @config
    @given(drawn=fault_cases())
    def prop(drawn: tuple[str, Case]) -> None:
        fault, case = drawn
        fuzzer.faults += 1
        with injected(fuzzer, fault) as remaining_ms:
            result = fuzzer.invoke(case.event, remaining_ms)
        json.dumps(result, allow_nan=False)
        checker = check_direct if case.shape == "direct" else check_http
        status = checker(result, case)
        # The request itself may be refused first (a 4xx); otherwise the fault decides the status.
        expected = EXPECTED_FAULT_STATUS.get(fault, 500)
        assert status == expected or 400 <= status < 500, (fault, status, result)
        outcomes[f"{fault}->{status}"] += 1
        if status == 500:
            assert "internal error" in str(result)
        if status == 503 and case.shape != "direct":
            assert header(result, "Retry-After") == "60"
        assert fuzzer.answer(case.shape) == fuzzer.reference[case.shape], "no recovery after the fault"

    prop()
    print(f"[fuzz] faults: {fuzzer.faults - before} injected; {dict(sorted(outcomes.items()))}", flush=True)
    return fuzzer.faults - before


# ---------------------------------------------------------------------------------------------- tests


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_fuzz(fuzzer: Fuzzer, target: str) -> None:
    generated = run_target(fuzzer, target, FAST)
    assert generated >= FAST.max_examples // 2


def test_injected_faults(fuzzer: Fuzzer) -> None:
    injected_count = run_faults(fuzzer, settings(FAST, max_examples=30))
    assert injected_count >= 20


@pytest.mark.parametrize("fault", FAULTS)
def test_every_fault_kind_is_handled(fuzzer: Fuzzer, fault: str) -> None:
    """Each fault once on a request that reaches the model, so no kind is left to chance."""
    for shape in (*SHAPES, "direct"):
        event = dict(REFERENCE) if shape == "direct" else _http_event(shape, json.dumps(REFERENCE), False)
        with injected(fuzzer, fault) as remaining_ms:
            result = fuzzer.invoke(event, remaining_ms)
        status = (
            (result["error"]["status"] if "error" in result else 200)
            if shape == "direct"
            else result["statusCode"]
        )
        assert status == EXPECTED_FAULT_STATUS.get(fault, 500), (fault, shape, result)
        assert fuzzer.answer(shape) == fuzzer.reference[shape]


@pytest.mark.slow
def test_fuzz_10k(fuzzer: Fuzzer) -> None:
    per_target = math.ceil(SLOW_TOTAL * SLOW_MARGIN / len(TARGETS))
    slow = settings(FAST, max_examples=per_target)
    start_events = fuzzer.events
    for name in sorted(TARGETS):
        run_target(fuzzer, name, slow)
    faults = run_faults(fuzzer, settings(FAST, max_examples=500))
    total = fuzzer.events - start_events
    print(f"[fuzz] TOTAL: {total} generated events, {faults} faults injected", flush=True)
    assert total >= SLOW_TOTAL
