"""The two QPO rewrite prompts, written for sqjax from the paper's description (section 2.2 of
Ding et al. 2024), not copied from the authors' code (which also swaps the two names).

- solvability: a teacher checks that the draft is a math problem, solves it, and repairs it
  so it has one numeric answer, agrees with common sense, is self-contained and holds no
  solution; the reply ends with a "Final Question" section.
- difficulty: Evol-Instruct style: list ways to make the problem harder, plan, rewrite adding
  only 10-20 words, review; the reply ends with a "Finally Rewritten Problem" section.

`rewrite_parse.parse_rewrite` reads the text after the last of either marker.
"""

from __future__ import annotations

from typing import Literal

Goal = Literal["solvability", "difficulty"]
GOALS: tuple[Goal, ...] = ("solvability", "difficulty")

SOLVABILITY = """\
You are an experienced math teacher. A colleague wrote the draft problem below for your \
students, and you must make sure it can be used in class.

Work through these steps and show your work:
1. Check: is the draft a math problem at all? If it is not, turn it into a closely related \
math problem on the same topic.
2. Solve: solve the problem step by step. Note every place where you get stuck: a missing \
quantity, a condition that contradicts another one or common sense (for example a negative \
number of people), an ambiguous question, or more than one possible answer.
3. Repair: change as little as possible so that the problem
   - has exactly one answer, and that answer is a number;
   - agrees with common sense;
   - is self-contained: every quantity and condition needed is stated in the problem;
   - contains no solution, hint or answer.
   If the draft already meets every requirement, keep it unchanged.

End your reply with a section that starts with the line "### Final Question:" followed by \
the repaired problem alone, with nothing after it.

Draft problem:
{question}"""

DIFFICULTY = """\
I want you to act as a problem rewriter. Rewrite the math problem below into a harder \
version that needs more steps of reasoning, while it stays a well-posed problem with exactly \
one numeric answer that a strong student could solve.

Step 1: List several ways to make the problem more difficult (for example: add a \
constraint, turn a given quantity into one that must be computed first, add a step of \
reasoning, combine it with a related concept). Do not change the language of the problem.
Step 2: Write a plan: choose one or more ways from the list and say how you will apply them.
Step 3: Rewrite the problem following the plan. The rewritten problem may add only 10 to 20 \
words to the original problem.
Step 4: Review the rewritten problem: check that it is solvable, has one numeric answer, is \
harder than the original and does not contain its solution; fix anything that fails.

Format your reply as:
Step 1 #Methods List#:
Step 2 #Plan#:
Step 3 #Rewritten Problem#:
Step 4 #Finally Rewritten Problem#:
and put after the last heading only the final version of the problem, with nothing after it.

#Original Problem#:
{question}"""

PROMPTS: dict[str, str] = {"solvability": SOLVABILITY, "difficulty": DIFFICULTY}


def rewrite_prompt(goal: str, question: str) -> str:
    """The user message asking the optimizer to rewrite `question` toward `goal`."""
    if goal not in PROMPTS:
        raise ValueError(f"rewrite goal={goal!r} is not one of {GOALS}")
    return PROMPTS[goal].format(question=question.strip())
