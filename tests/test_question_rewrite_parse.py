"""The rewritten question is the text after the LAST final-question marker, in the markdown
forms optimizers write; replies without one give None (the row is dropped)."""

import pytest

from sqjax.question.prompts import GOALS, rewrite_prompt
from sqjax.question.rewrite_parse import parse_rewrite

Q = "A baker sells 12 cakes a day at $15 each. How much does he earn in 7 days?"

CASES = [
    # an echoed Figure 11 heading before the problem (seen from SmolLM2-135M)
    ("Step 4 #Finally Rewritten Problem#:\n#Problem#:\n" + Q, Q),
    ("#Final Rewritten Problem#:\n" + Q, Q),
    # solvability prompt, as asked
    (
        "1. It is a math problem.\n2. 12 * 15 * 7 = 1260.\n3. Fine as is.\n\n### Final Question:\n"
        + Q,
        Q,
    ),
    # bold marker, question on the same line
    ("Checked and repaired.\n\n**Final Question:** " + Q, Q),
    # bold marker with the colon outside, question on the next line, quoted
    ('Analysis...\n**Final Question**:\n"' + Q + '"\n', Q),
    # plain line marker
    ("Some reasoning.\nFinal question:\n" + Q + "\n", Q),
    # difficulty prompt format
    (
        "Step 1 #Methods List#: add a discount\nStep 2 #Plan#: add 10% off on Sundays\n"
        "Step 3 #Rewritten Problem#: draft\nStep 4 #Finally Rewritten Problem#: " + Q,
        Q,
    ),
    # markdown heading, code fence and a closing rule
    ("## Step 4\n### Finally Rewritten Problem\n```\n" + Q + "\n```\n---\n", Q),
    # numbered bold heading
    ("4. **Finally Rewritten Problem:**\n\n" + Q, Q),
    # repeated marker: the last one wins (the first is a draft)
    ("**Final Question:** draft version\n\nReview: too easy.\n\n**Final Question:** " + Q, Q),
    # the marker mentioned in passing is not a marker, a real one later is
    ("I will write the final question below.\n\nFinal Question: " + Q, Q),
    # blockquote
    ("> **Final question:** " + Q, Q),
]

NONE_CASES = [
    "1. It is a math problem.\n2. The answer is 1260.",  # no marker
    "### Final Question:\n\n",  # marker, nothing after it
    "The final question asks about cakes, 12 * 15 * 7 = 1260.",  # a phrase, not a section
    "",
    # SmolLM2-135M's reply to Figure 11, cut off after echoing the prompt's format
    "Step 4 #Final Rewritten Problem#:\n\n#Problem#",
    "Step 4 #Finally Rewritten Problem#:\n#Problem#:\n",
]


@pytest.mark.parametrize("reply, want", CASES)
def test_parses_the_last_marker(reply, want):
    assert parse_rewrite(reply) == want


@pytest.mark.parametrize("reply", NONE_CASES)
def test_no_marker_gives_none(reply):
    assert parse_rewrite(reply) is None


# a reply in the output format each prompt asks for, with Q as its final question
PAPER_REPLIES = {
    "solvability": (
        "CREATED QUESTION: A shop sells pens.\n"
        "VERIFICATION AND MODIFICATION: The price is missing; I add it. 3 * 2 = 6.\n"
        "FINAL QUESTION: " + Q
    ),
    "difficulty": (
        "Step 1 #Methods List#: add a discount\nStep 2 #Plan#: add a 10% discount\n"
        "Step 3 #Rewritten Problem#: A harder draft.\nStep 4 #Finally Rewritten Problem#: " + Q
    ),
}
OURS = {"solvability": "sqjax-qpo-solvability", "difficulty": "sqjax-qpo-difficulty"}


@pytest.mark.parametrize("goal", GOALS)
def test_paper_prompts_name_the_markers_the_parser_reads(goal):
    prompt = rewrite_prompt(goal, "  " + Q + "\n")
    assert Q in prompt
    marker = {"solvability": "FINAL QUESTION:", "difficulty": "#Finally Rewritten Problem#:"}
    assert marker[goal] in prompt
    assert parse_rewrite(PAPER_REPLIES[goal]) == Q
    # markdown-wrapped forms of the same replies
    assert parse_rewrite(PAPER_REPLIES[goal].replace("FINAL QUESTION:", "**FINAL QUESTION:**")) == Q
    assert parse_rewrite(PAPER_REPLIES[goal] + "\n\n---\nHope this helps!") == Q


@pytest.mark.parametrize("goal", GOALS)
def test_our_prompts_name_the_marker_the_parser_reads(goal):
    prompt = rewrite_prompt(goal, "  " + Q + "\n", OURS)
    assert prompt.endswith(Q)
    marker = {"solvability": "### Final Question:", "difficulty": "#Finally Rewritten Problem#:"}[
        goal
    ]
    assert marker in prompt
    # a reply that follows the prompt's format literally parses to the question
    assert (
        parse_rewrite(
            "reasoning...\n" + ("Step 4 " if goal == "difficulty" else "") + marker + " " + Q
        )
        == Q
    )


def test_paper_prompts_follow_figures_10_and_11():
    prompt = rewrite_prompt("difficulty", Q)
    assert "10 to 20 words" in prompt and "#Methods List#" in prompt and "#Plan#" in prompt
    assert "you need to first correct the errors within it" in prompt
    solv = rewrite_prompt("solvability", Q)
    for must in ("math teacher", "explicitly request multiple-step reasoning", "common sense"):
        assert must in solv, must
    with pytest.raises(ValueError):
        rewrite_prompt("clarity", Q)
