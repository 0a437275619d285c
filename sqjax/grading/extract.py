"""Final-answer extraction from model outputs and gold fields.

The rules follow the paper's evaluation (stage 8): the last `\\boxed{}` wins, else a
GSM8K-style final line `#### 42` (models trained on GSM8K solutions end that way), else the
text after "the answer is". GSM8K gold answers follow `#### `.
"""

from __future__ import annotations

import re

from sqjax.errors import SqjaxError

_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_ANSWER_IS_RE = re.compile(r"the\s+(?:final\s+)?answer\s+is\b", re.IGNORECASE)
_SENTENCE_END_RE = re.compile(r"\.(?:\s|$)")
_ECHO_RE = re.compile(r"\\boxed\s*\{\s*\}")  # the instruction's empty box, echoed back
_GSM8K_LINE_RE = re.compile(r"^[ \t]*####[ \t]*(\S[^\n]*?)[ \t]*$", re.MULTILINE)


def _braced(text: str, start: int) -> str | None:
    """The content of the brace group opening at text[start] == "{"; None if unbalanced.

    A backslash escapes the next character, so `\\{` and `\\}` do not count.
    """
    depth = 0
    i = start
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
        i += 1
    return None


def last_boxed_content(text: str) -> str | None:
    """The content of the last `\\boxed{...}` / `\\fbox{...}` / `\\boxed x` in text.

    Nested braces are matched. `\\boxed 5$` (no braces) gives the text up to the next `$` or
    line end. The last box is the one that starts last; if its braces never close (a truncated
    output) the result is None rather than an earlier, possibly intermediate, box.
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    end = matches[-1].end()
    rest = text[end:]
    stripped = rest.lstrip(" \t")
    if stripped.startswith("{"):
        content = _braced(text, end + len(rest) - len(stripped))
        return None if content is None else content.strip()
    if not rest[:1].isspace():
        return None
    content = re.split(r"[$\n]", stripped, maxsplit=1)[0].strip()
    return content or None


def _answer_is_tail(text: str) -> str | None:
    """The answer after the last "the (final) answer is" that states one; None if none does.

    A statement that only echoes the prompt's instruction ("The answer is within \\boxed{}.",
    as small models write) states no answer, so the one before it counts.
    """
    for match in reversed(list(_ANSWER_IS_RE.finditer(text))):
        line_end = text.find("\n", match.end())
        tail = _stated_answer(text[match.end() : None if line_end < 0 else line_end])
        if tail is not None and not _ECHO_RE.search(tail):
            return tail
    return None


def _stated_answer(rest: str) -> str | None:
    """The answer stated on the rest of the line after "the answer is"."""
    tail = rest.lstrip(" \t:*").strip()
    math = re.match(r"\$\$?(.+?)\$\$?", tail) or re.match(r"\\[(\[](.+?)\\[)\]]", tail)
    if math:
        tail = math.group(1)
    else:
        tail = _SENTENCE_END_RE.split(tail, maxsplit=1)[0]
    tail = tail.strip().strip("*").strip().rstrip(".").strip().strip("$").strip()
    return tail or None


def _gsm8k_line(text: str) -> str | None:
    """The answer on the last `#### ...` line; None if there is none."""
    matches = list(_GSM8K_LINE_RE.finditer(text))
    if not matches:
        return None
    answer = matches[-1].group(1).strip().rstrip(".").strip().strip("$").strip()
    return answer or None


def extract_answer(text: str) -> str | None:
    """The final answer of a model output: last boxed content, else a `#### ...` final line,
    else "the answer is ...".

    Returns None when the output states no final answer.
    """
    boxed = last_boxed_content(text)
    if boxed:
        return boxed
    return _gsm8k_line(text) or _answer_is_tail(text)


def gsm8k_gold(answer_field: str) -> str:
    """The gold number of a GSM8K `answer` field: the text after `#### `, commas removed."""
    if "####" not in answer_field:
        raise SqjaxError(
            f"GSM8K answer field has no '#### ' gold marker: {answer_field[-80:]!r}; "
            "pass the dataset's `answer` field"
        )
    gold = answer_field.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise SqjaxError(
            f"GSM8K answer field has an empty gold after '####': {answer_field[-80:]!r}"
        )
    return gold
