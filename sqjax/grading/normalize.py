"""String normalisation of final answers, and exact parsing of plain numbers.

Two forms: `clean_answer` keeps valid LaTeX (it goes to the symbolic checker), and
`canonical_answer` also drops spaces and fixes brace-less `\\frac12` / `\\sqrt2` so that
string equality catches most equal pairs cheaply.

Choices (documented because graders differ on them):
- A percent sign is dropped: "50\\%" equals "50" (as Hendrycks' MATH grader does). The numeric
  check also lets "50\\%" equal "0.5"; plain "0.5" and "50" stay unequal.
- Units in `\\text{}`/`\\mbox{}`/`\\mathrm{}` after a value, and plain unit words after a number
  ("5 cm", "18 dollars"), are dropped; so are degree marks, dollar signs and a trailing period.
- "1,000" (groups of exactly three digits) is a thousands separator, so "1,234" is 1234, not
  the pair (1, 234); write "1, 234" for a list.
- A single-variable prefix "x =" is dropped.
- Degree marks are dropped, not converted: "45^\\circ" equals "45", not "\\frac{\\pi}{4}".
- "2 1/2" and "2\\frac{1}{2}" are mixed numbers (5/2), never products.
- Scientific notation is a number: "1.5e3", "1.5\\times10^{3}" and "1.5\\cdot 10^3" are 1500
  (the exponent has at most 4 digits; a decimal mantissa counts as rounded).
- A repeating decimal is its exact fraction: "0.\\overline{3}", "0.\\dot{3}" and "0.(3)" are 1/3,
  "0.1\\overline{6}" and "0.\\dot{1}4\\dot{2}" are 1/6 and 142/999.
- A number longer than NUMBER_MAX_CHARS is not parsed (it equals only its own exact string);
  shorter ones are parsed exactly at any digit count (no int/str conversion limit).
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

_DROP = re.compile(
    r"\\(?:left|right)\.|\\(?:displaystyle|left|right|[bB]ig[lr]?)(?![a-zA-Z])|\{,\}"
)
_SPACES = re.compile(r"\\q?quad(?![a-zA-Z])|~|\s")
_THIN_SPACE = re.compile(r"(?<!\\)\\[,;: ]")  # not the `\\` row break before a space
_NEG_SPACE = re.compile(r"(?<!\\)\\!")
_DEGREES = re.compile(r"\^\s*\{?\s*\\circ\s*\}?|°|\\degree\b|\s+degrees?$")
_PERCENT = re.compile(r"\\%|%|\s*\\?percent$")
_TEXT_CMDS = r"\\(?:text|textbf|textrm|textit|mbox|mathrm|mathbf|operatorname)"
_UNIT_TAIL = re.compile(_TEXT_CMDS + r"\s*\{([a-zA-Z\s.]*)\}\s*(?:\^\s*\{?\d\}?)?\s*$")
_TEXT_OPEN = re.compile(_TEXT_CMDS + r"\s*\{")
_NUMBER_UNIT = re.compile(
    r"^([-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?)\s+"
    r"((?:[a-zA-Z]{2,}|[mgshlLK])(?:\s+[a-zA-Z]+)*\.?(?:\^\s*\{?\d\}?)?)$"
)
_VAR_PREFIX = re.compile(r"^(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\{?\w+\}?)?\s*=\s*([^=<>]+)$")
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_CHOICE = re.compile(r"^\(([A-Ea-e])\)$")
_MIXED_SLASH = re.compile(r"^([-+]?\d+)\s+(\d+)/(\d+)$")

_NUM = r"\d+(?:\.\d+)?|\.\d+"
_DECIMAL_RE = re.compile(rf"^[-+]?(?:{_NUM})$")
_FRAC_RE = re.compile(r"^([-+]?)\\frac\{(\d+)\}\{(\d+)\}$")
_SLASH_RE = re.compile(r"^([-+]?)(\d+)/(\d+)$")
_MIXED_RE = re.compile(r"^([-+]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_EXPONENT = r"([-+]?\d{1,4})"
_SCI_E_RE = re.compile(rf"^([-+]?(?:{_NUM}))[eE]{_EXPONENT}$")
_SCI_TIMES_RE = re.compile(
    rf"^([-+]?(?:{_NUM}))(?:\\times|\\cdot|\*|×)10\^(?:\{{{_EXPONENT}\}}|([-+]?\d))$"
)
_REPEAT_RES = (
    re.compile(r"^([-+]?)(\d*)\.(\d*)\\overline\{(\d+)\}$"),
    re.compile(r"^([-+]?)(\d*)\.(\d*)\((\d+)\)$"),
    re.compile(r"^([-+]?)(\d*)\.(\d*)\\dot\{?(\d)\}?$"),
)
_REPEAT_DOTS_RE = re.compile(r"^([-+]?)(\d*)\.(\d*)\\dot\{?(\d)\}?(\d*)\\dot\{?(\d)\}?$")
_NUMBER_SHAPE = re.compile(r"^[-+]?[\d.]+(?:/\d+)?$|^[-+]?\d*\\frac\{\d+\}\{\d+\}$")
NUMBER_MAX_CHARS = 10_000  # parsing is exact at any length; this bounds its time


def _unwrap_text(s: str) -> str:
    """Replaces every `\\text{X}` (and similar) by X, matching nested braces."""
    while (m := _TEXT_OPEN.search(s)) is not None:
        depth, i = 1, m.end()
        while i < len(s) and depth:
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            i += 1
        if depth:
            return s
        s = s[: m.start()] + s[m.end() : i - 1] + s[i:]
    return s


def _strip_units(s: str) -> str:
    """Drops trailing unit groups (`5\\text{ cm}^2`) and unit words after a number (`5 cm`)."""
    while (m := _UNIT_TAIL.search(s)) is not None and s[: m.start()].strip():
        s = s[: m.start()].rstrip()
    m = _NUMBER_UNIT.match(s)
    return m.group(1) if m else s


def clean_answer(answer: str) -> tuple[str, bool]:
    """LaTeX-valid cleaned answer and whether it carried a percent sign."""
    s = answer.strip()
    s = _DROP.sub("", s)
    s = _NEG_SPACE.sub("", s)
    s = _THIN_SPACE.sub(" ", s)
    s = _SPACES.sub(" ", s)
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    s = s.replace("\\$", "").replace("$", "").strip()
    s = re.sub(r"\s*dollars?$", "", s)
    s = _DEGREES.sub("", s).strip()
    percent = _PERCENT.search(s) is not None
    s = _PERCENT.sub("", s).strip()
    s = _strip_units(s)
    s = _unwrap_text(s).strip()
    s = s.rstrip(".").strip()
    if (m := _VAR_PREFIX.match(s)) is not None:
        s = m.group(1).strip()
    s = _strip_units(s)
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if (m := _MIXED_SLASH.match(s)) is not None:
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    if (m := _CHOICE.match(s)) is not None:
        s = m.group(1)
    return s, percent


def _fix_brace_less(s: str) -> str:
    """`\\frac12` -> `\\frac{1}{2}`, `\\frac1{x}` -> `\\frac{1}{x}`, `\\sqrt2` -> `\\sqrt{2}`."""
    s = re.sub(r"\\sqrt(\w)", r"\\sqrt{\1}", s)
    s = re.sub(r"\\frac(\w)(\w)", r"\\frac{\1}{\2}", s)
    s = re.sub(r"\\frac(\w)\{", r"\\frac{\1}{", s)
    return re.sub(r"\\frac(\{[^{}]*\})(\w)", r"\\frac\1{\2}", s)


def canonical_answer(answer: str) -> tuple[str, bool]:
    """Cleaned answer without spaces and with braces fixed, for string equality."""
    s, percent = clean_answer(answer)
    s = _fix_brace_less(s.replace(" ", ""))
    if (m := _SLASH_RE.match(s)) is not None:
        s = f"{m.group(1)}\\frac{{{m.group(2)}}}{{{m.group(3)}}}"
    if s.startswith("."):
        s = "0" + s
    return s, percent


def _int(digits: str) -> int:
    """int() of a digit string of any length (int() itself stops at 4,300 digits)."""
    return int(Decimal(digits)) if digits else 0


def _repeating(sign: str, whole: str, fixed: str, period: str) -> Fraction:
    """The exact value of whole.fixed(period)(period)..."""
    tail = Fraction(_int(fixed + period) - _int(fixed), 10 ** len(fixed) * (10 ** len(period) - 1))
    value = _int(whole) + tail
    return -value if sign == "-" else value


def _scientific(canonical: str) -> tuple[Fraction, bool] | None:
    m = _SCI_E_RE.match(canonical) or _SCI_TIMES_RE.match(canonical)
    if m is None:
        return None
    exponent = int(next(g for g in m.groups()[1:] if g is not None))
    return Fraction(Decimal(m.group(1))) * Fraction(10) ** exponent, "." in m.group(1)


def _repeating_decimal(canonical: str) -> Fraction | None:
    for pattern in _REPEAT_RES:
        if (m := pattern.match(canonical)) is not None:
            return _repeating(*m.groups())
    if (m := _REPEAT_DOTS_RE.match(canonical)) is not None:
        sign, whole, fixed, first, middle, last = m.groups()
        return _repeating(sign, whole, fixed, first + middle + last)
    return None


def is_long_number(canonical: str) -> bool:
    """A plain number, fraction or mixed number too long for `parse_number` to read."""
    return len(canonical) > NUMBER_MAX_CHARS and _NUMBER_SHAPE.match(canonical) is not None


def parse_number(canonical: str) -> tuple[Fraction, bool] | None:
    """Exact value of a plain number, fraction, mixed number, scientific notation or repeating
    decimal in canonical form.

    Returns (value, rounded) where rounded says a decimal point was written, so the value may
    be a rounding of the true answer; None when the text is not such a number or is longer
    than NUMBER_MAX_CHARS. A mixed number `2\\frac{1}{2}` is 5/2, never the product 2 * 1/2.
    """
    if len(canonical) > NUMBER_MAX_CHARS:
        return None
    if _DECIMAL_RE.match(canonical):
        return Fraction(Decimal(canonical)), "." in canonical
    if (m := _FRAC_RE.match(canonical)) is not None and _int(m.group(3)) != 0:
        value = Fraction(_int(m.group(2)), _int(m.group(3)))
        return (-value if m.group(1) == "-" else value), False
    if (m := _MIXED_RE.match(canonical)) is not None and 0 < _int(m.group(3)) < _int(m.group(4)):
        value = _int(m.group(2)) + Fraction(_int(m.group(3)), _int(m.group(4)))
        return (-value if m.group(1) == "-" else value), False
    if (value := _repeating_decimal(canonical)) is not None:
        return value, False
    return _scientific(canonical)
