"""The model-free math check against real GSM8K/MATH questions and real general requests."""

from sqjax import assets
from sqjax.data.jsonl import load_jsonl
from sqjax.question.math_cues import looks_like_math

GENERAL = [
    "Can you explain the concept of AI in simple terms?",
    "I need to edit this text to make it more formal: hey guys, meeting moved to friday.",
    "Write a short love poem about the sea.",
    "What are some good costume ideas for a Halloween party?",
    "Summarize the plot of Pride and Prejudice.",
    "How do I improve my sleep schedule?",
    "Translate 'good morning' into French.",
    "Give me tips for a job interview at a tech company.",
    "What is the capital of Australia?",
    "Describe the water cycle for a school project.",
    "Can you recommend a few science fiction novels?",
    "Help me write an email asking my manager for a day off.",
    "What are the 3 best places to visit in Japan in 2024?",
    "List 5 tips for staying productive while working from home.",
    "Write a 200-word story about a dragon.",
]


def test_real_math_questions_pass():
    gsm = [r["question"] for r in load_jsonl(assets.resolve(assets.GSM8K_TRAIN))[:500]]
    math = [r["problem"] for r in load_jsonl(assets.resolve(assets.MATH_TRAIN))[:500]]
    gsm_share = sum(map(looks_like_math, gsm)) / len(gsm)
    math_share = sum(map(looks_like_math, math)) / len(math)
    print(f"GSM8K {gsm_share:.3f}, MATH {math_share:.3f}")
    assert gsm_share >= 0.97 and math_share >= 0.9


def test_general_requests_fail():
    assert [q for q in GENERAL if looks_like_math(q)] == []
