"""Property-based tests (Hypothesis) over the surfaces that read untrusted input: model output
(answer extraction, grading, rewrite parsing, stop strings), data files (JSONL) and configs
(YAML text, `--set` overrides). Properties: no exception but the documented SqjaxError
escapes, verdicts are deterministic, grading is reflexive and symmetric where it should be.

Bounded for CI: SQJAX_HYPOTHESIS_EXAMPLES (default 100) examples per property, derandomized
so a run is repeatable; set SQJAX_HYPOTHESIS_SEARCH=1 to explore new examples instead. The
grading properties run the main-process checks with a stand-in for the math-verify worker pool
(that is where an exception would escape; the worker reports its own errors as "unequal");
one property, with a quarter of the examples, grades through the real workers.
"""

from __future__ import annotations

import json
import math
import os

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sqjax.data.jsonl import atomic_write_jsonl, load_jsonl
from sqjax.errors import SqjaxError
from sqjax.grading import extract_answer, grade, judge, last_boxed_content
from sqjax.grading.normalize import canonical_answer, parse_number
from sqjax.question.rewrite_parse import parse_rewrite
from sqjax.question.solvability import verdict
from sqjax.registry import parse_config
from sqjax.sampling.stops import find_stop

EXAMPLES = int(os.environ.get("SQJAX_HYPOTHESIS_EXAMPLES", "100"))
PROPS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=os.environ.get("SQJAX_HYPOTHESIS_SEARCH") != "1",
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
METHODS = {"no_answer", "exact", "numeric", "symbolic", "timeout"}
SYMBOLIC_TIMEOUT_S = 2.0

# --- strategies: what model output looks like, and what breaks parsers ------------------------
LATEX_BITS = [
    "\\boxed{",
    "\\frac{",
    "\\sqrt{",
    "}",
    "{",
    "\\",
    "$",
    "^",
    "_",
    "\\left(",
    "\\right)",
    "\\%",
    "\\text{ cm}",
    "\\times10^{",
    "\\overline{",
    "\\dot{",
    "####",
    "The answer is ",
    "\\pi",
    "x=",
    ",",
    ".",
    "-",
    "(",
    ")",
    "[",
    "]",
    "\n",
    " ",
    "e",
    "E",
]
latex_soup = st.lists(
    st.one_of(
        st.sampled_from(LATEX_BITS), st.text(max_size=4), st.from_regex(r"\d{1,6}", fullmatch=True)
    ),
    max_size=30,
).map("".join)
huge_numbers = st.builds(
    lambda sign, digits, frac: sign + digits + frac,
    st.sampled_from(["", "-", "+"]),
    st.integers(1, 12_000).map(lambda n: "9" * n),
    st.sampled_from(["", ".5", ".0", "/7", "e5", "\\times10^{3}"]),
)
nested = st.builds(
    lambda o, body, c: "\\boxed" + "{" * o + body + "}" * c,
    st.integers(0, 3000),
    st.text(max_size=5),
    st.integers(0, 3000),
)
answers = st.one_of(st.text(max_size=60), latex_soup, huge_numbers, nested)
numbers = st.one_of(
    st.integers(-(10**30), 10**30).map(str),
    st.decimals(allow_nan=False, allow_infinity=False, places=4).map(str),
    st.builds(lambda a, b: f"\\frac{{{a}}}{{{b}}}", st.integers(0, 999), st.integers(1, 999)),
    st.builds(lambda a, e: f"{a}e{e}", st.integers(-99, 99), st.integers(-30, 30)),
    st.builds(
        lambda a, r: f"0.{a}\\overline{{{r}}}",
        st.from_regex(r"\d{0,3}", fullmatch=True),
        st.from_regex(r"\d{1,3}", fullmatch=True),
    ),
)


class StubPool:
    """Stands in for the math-verify worker pool: a fixed verdict from the strings' hash."""

    def check(self, gold: str, pred: str, timeout_s: float) -> bool | None:
        assert isinstance(gold, str) and isinstance(pred, str)
        return [True, False, None][hash((gold, pred)) % 3]


@pytest.fixture
def stub_pool(monkeypatch):
    from sqjax.grading import equivalence

    monkeypatch.setattr(equivalence, "get_pool", StubPool)


def _graded(pred: str | None, gold: str) -> tuple[bool, str]:
    verdict_, method = judge(pred, gold, timeout_s=SYMBOLIC_TIMEOUT_S)
    assert isinstance(verdict_, bool) and method in METHODS
    return verdict_, method


# --- answer extraction and grading ----------------------------------------------------------
@PROPS
@given(text=st.one_of(answers, st.lists(answers, max_size=5).map("\n".join)))
def test_extraction_never_raises_and_is_deterministic(text: str) -> None:
    first = extract_answer(text)
    assert first is None or (isinstance(first, str) and first)
    assert extract_answer(text) == first
    boxed = last_boxed_content(text)
    assert boxed is None or boxed in text


@PROPS
@given(
    body=st.text(alphabet=st.characters(blacklist_characters="{}\\$\n"), min_size=1, max_size=40)
)
def test_a_boxed_answer_is_extracted_whole(body: str) -> None:
    assume(body.strip())
    assert extract_answer(f"Some reasoning. So \\boxed{{{body}}}.") == body.strip()


golds = st.one_of(numbers, st.sampled_from(["\\frac{1}{2}", "x^2+1", "(1,2]", "\\{1,2\\}"]))


@PROPS
@given(pred=answers, gold=golds)
def test_any_answer_grades_without_raising_and_deterministically(
    stub_pool, pred: str, gold: str
) -> None:
    assert _graded(pred, gold) == _graded(pred, gold)


@settings(PROPS, max_examples=max(10, EXAMPLES // 4))
@given(pred=answers, gold=golds)
def test_grading_through_the_workers_never_raises(pred: str, gold: str) -> None:
    first, second = _graded(pred, gold), _graded(pred, gold)
    assert first == second or "timeout" in (first[1], second[1])


@PROPS
@given(text=answers)
def test_a_whole_output_grades_without_raising(stub_pool, text: str) -> None:
    g = grade(text, "42", timeout_s=SYMBOLIC_TIMEOUT_S)
    assert set(g) == {"answer", "correct", "method"} and g["method"] in METHODS


@PROPS
@given(x=st.one_of(numbers, huge_numbers, latex_soup))
def test_an_answer_equals_itself(x: str) -> None:
    assume(canonical_answer(x)[0])
    assert _graded(x, x) == (True, "exact")


@PROPS
@given(a=numbers, b=numbers)
def test_number_grading_is_symmetric(a: str, b: str) -> None:
    assert _graded(a, b) == _graded(b, a)


@PROPS
@given(a=numbers)
def test_parsed_numbers_are_exact_fractions(a: str) -> None:
    parsed = parse_number(canonical_answer(a)[0])
    assert parsed is not None
    value, _ = parsed
    assert math.isclose(float(value), float(eval_number(a)), rel_tol=1e-9, abs_tol=1e-12)


def eval_number(text: str) -> float:
    """An independent reading of the `numbers` strategy's forms."""
    if text.startswith("\\frac"):
        num, den = text[6:-1].split("}{")
        return int(num) / int(den)
    if "\\overline" in text:
        head, rep = text[:-1].split("\\overline{")
        fixed = head.split(".", 1)[1]
        return float(head or "0") + int(rep) / (10 ** len(fixed) * (10 ** len(rep) - 1))
    return float(text)


# --- rewrite parsing, verdicts, stop strings --------------------------------------------------
replies = st.one_of(
    st.text(max_size=200),
    st.lists(
        st.sampled_from(
            [
                "### Final Question:",
                "**Final Question:**",
                "Step 4 #Finally Rewritten Problem#:",
                "```",
                "---",
                "\n",
                " ",
                "What is 2+2?",
                "**",
                '"',
                "Yes",
                "No",
                "yes.",
            ]
        )
        | st.text(max_size=8),
        max_size=25,
    ).map("".join),
)


@PROPS
@given(reply=replies)
def test_rewrite_and_verdict_parsing_never_raise(reply: str) -> None:
    q = parse_rewrite(reply)
    assert q is None or (isinstance(q, str) and q.strip() == q and q)
    assert parse_rewrite(reply) == q
    for mode in ("strict", "lax"):
        assert verdict(reply, mode) == verdict(reply, mode)


class CharTokenizer:
    """Token id = code point; decode joins characters (a byte-exact stand-in tokenizer)."""

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        return "".join(chr(i) for i in ids)


@PROPS
@given(
    text=st.text(alphabet="ab\n#", max_size=40),
    stops=st.lists(st.text(alphabet="ab\n#", min_size=1, max_size=4), max_size=3),
    min_tokens=st.integers(0, 5),
)
def test_stop_strings_cut_at_the_first_completing_token(
    text: str, stops: list[str], min_tokens: int
) -> None:
    ids = [ord(c) for c in text]
    found = find_stop(CharTokenizer(), ids, stops, 0, min_tokens)
    first = max(min_tokens, 1)

    def completes(prefix: str) -> bool:
        """A stop string occurs in prefix and ends at or after token `first`."""
        return any(prefix.find(s, max(0, first - len(s))) >= 0 for s in stops)

    if found is None:
        assert not completes(text) or len(text) < first
        return
    n, cut = found
    assert first <= n <= len(text) and completes(text[:n]) and not completes(text[: n - 1])
    assert text.startswith(cut) and any(text[len(cut) :].startswith(s) for s in stops)


# --- data files and configs --------------------------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=12,
)


def _finite(v):
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, list):
        return [_finite(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite(x) for k, x in v.items()}
    return v


@PROPS
@given(rows=st.lists(st.dictionaries(st.text(max_size=8), json_values, max_size=5), max_size=6))
def test_jsonl_round_trip_is_strict_json(tmp_path_factory, rows: list[dict]) -> None:
    path = tmp_path_factory.mktemp("rt") / "rows.jsonl"
    atomic_write_jsonl(path, rows)
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-standard constant {c}"))
    assert load_jsonl(path) == [_finite(r) for r in rows]


@PROPS
@given(
    data=st.binary(max_size=300)
    | st.lists(
        st.sampled_from(
            [
                b'{"a": 1}',
                b"\n",
                b"\xff",
                b"\xc3",
                b"[1]",
                b'{"a": "\xe2\x82',
                b"\r\n",
                b"\x00",
                b"{",
            ]
        ),
        max_size=20,
    ).map(b"".join)
)
def test_jsonl_reader_raises_only_located_errors(tmp_path_factory, data: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "in.jsonl"
    path.write_bytes(data)
    try:
        rows = load_jsonl(path)
    except SqjaxError as e:
        assert str(e).startswith(f"{path}:") and "\n" not in str(e)
    else:
        assert all(isinstance(r, dict) for r in rows)


yaml_text = st.one_of(
    st.text(max_size=120),
    st.lists(
        st.sampled_from(
            [
                "seed: ",
                "models: {m: {path: /m}}\n",
                "qft: {epochs: ",
                "}",
                "\n",
                "-1",
                "0",
                "1e9",
                "[",
                "]",
                "{",
                "sft: {models: [{model: m}]}\n",
                "x",
                "'",
                '"',
                ": ",
                "&a ",
                "*a ",
                "!!python/object:os.system ",
                "eval: {benchmarks: {",
                "../x",
                "mesh: {data: ",
            ]
        ),
        max_size=15,
    ).map("".join),
)
overrides = st.lists(
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from(
            [
                "seed",
                "qft.epochs",
                "models",
                "models.m.path",
                "eval.limit",
                "filter.language.languages",
                "nope.key",
                "qft",
                "",
            ]
        ),
        st.sampled_from(
            [
                "1",
                "-3",
                "0",
                "[]",
                "{}",
                "null",
                "'x'",
                "{a: 1}",
                "[1, 2]",
                "1.5",
                "true",
                "{../x: {path: /m}}",
                "",
                "{",
            ]
        ),
    ),
    max_size=3,
) | st.lists(st.text(max_size=20), max_size=2)


@PROPS
@given(text=yaml_text, sets=overrides)
def test_config_loading_raises_only_sqjax_errors(text: str, sets: list[str]) -> None:
    try:
        parse_config(text, "prop.yaml", sets)
    except SqjaxError as e:
        assert "\n" not in str(e).strip() or "prop.yaml" in str(e)
