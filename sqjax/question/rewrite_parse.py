"""Reads the rewritten question out of an optimizer's reply.

The question is the text after the LAST "final question" / "finally rewritten problem"
marker. Markers are recognised at the start of a line in the markdown forms models write:
`### Final Question:`, `**Final Question:**`, `Final question:`, `Step 4 #Finally Rewritten
Problem#:`, `4. **Finally Rewritten Problem**`, each followed by a colon or the end of the
line. Surrounding markdown (bold, heading marks, quotes, code fences, a closing `---`) is
stripped, and so are format headings the reply echoes from Figure 11 right after the marker
(`#Problem#:`, as small models write). A reply without a marker, or with nothing after the
last one, gives None: the paper drops such rows.
"""

from __future__ import annotations

import re

_MARKER = re.compile(
    r"^[ \t>*_#\-]*"  # markdown before the phrase: quotes, bullets, heading marks, bold
    r"(?:step[ \t]*\d+[ \t.:)]*)?(?:\d+[ \t]*[.)][ \t]*)?"  # "Step 4", "4."
    r"[ \t*_#]*"
    r"final(?:ly)?[ \t]+(?:rewritten[ \t]+)?(?:question|problem)s?"
    r"[ \t*_#]*(?::|(?=\n)|$)[ \t*_#]*",
    re.IGNORECASE | re.MULTILINE,
)
_FENCE = re.compile(r"^```[\w-]*[ \t]*$", re.MULTILINE)
_TRAILER = re.compile(r"\n[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*(?:\n.*)?\Z", re.DOTALL)
_WRAPPERS = ('"', "'", "\u201c", "\u201d", "**", "*", "__", "`")
_HEADINGS = re.compile(r"\A(?:[ \t]*#[^#\n]{1,40}#[ \t]*:?[ \t]*(?:\n|\Z))+")


def _unwrap(text: str) -> str:
    """Strips whole-text wrappers (quotes, bold, backticks) repeatedly."""
    changed = True
    while changed and text:
        changed = False
        for w in _WRAPPERS:
            if text.startswith(w):
                text, changed = text[len(w) :].strip(), True
            if text.endswith(w) and not (w == "*" and text.endswith("\\*")):
                text, changed = text[: -len(w)].strip(), True
    return text


def parse_rewrite(reply: str) -> str | None:
    """The rewritten question after the last marker, cleaned; None when there is none."""
    matches = list(_MARKER.finditer(reply))
    if not matches:
        return None
    tail = reply[matches[-1].end() :]
    tail = _FENCE.sub("", tail)
    tail = _TRAILER.sub("", tail).strip()
    tail = _HEADINGS.sub("", tail).strip()
    tail = _unwrap(tail)
    return tail or None
