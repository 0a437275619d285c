"""The language filter: the paper's ASCII rule, and the optional language-ID check on a
table of non-English math questions written in plain ASCII (which the ASCII rule keeps)
and on real GSM8K/MATH train questions (which it must not drop)."""

from __future__ import annotations

import pytest

from sqjax import assets
from sqjax.data.jsonl import read_jsonl
from sqjax.question.language import LanguageFilter, language_reason, prose
from sqjax.registry import parse_config

RULE = LanguageFilter(language_id=True)

NOT_ENGLISH = {  # written for this test, ASCII only (no accents), so the paper's rule keeps them
    "es": "Maria tiene doce manzanas y le da cuatro a su hermano. Cuantas manzanas le quedan a Maria al final del dia?",
    "fr": "Pierre achete trois cahiers a deux euros chacun et un stylo a un euro. Combien a-t-il depense en tout?",
    "de": "Ein Zug faehrt mit einer Geschwindigkeit von 80 Kilometern pro Stunde. Wie weit kommt er in drei Stunden?",
    "id": "Budi membeli lima buah buku dengan harga sepuluh ribu rupiah per buku. Berapa total uang yang harus dibayar Budi?",
    "it": "Un negozio vende quaranta penne al giorno. Quante penne vende in una settimana se resta aperto tutti i giorni?",
    "pt": "Joao tem vinte reais e compra dois sanduiches que custam seis reais cada um. Quanto dinheiro sobra para ele?",
    "nl": "Een boer heeft twaalf koeien en koopt er nog acht bij. Hoeveel koeien heeft de boer nu in totaal op zijn boerderij?",
    "pl": "Ania ma piec jablek i kupuje jeszcze siedem. Ile jablek ma teraz Ania w swoim koszyku po zakupach?",
    "es-latex": "Encuentra el valor de $x$ tal que $2x + 3 = 11$ y explica con cuidado cada paso de la solucion.",
}


def test_paper_rule():
    assert language_reason("  ") == "empty"
    assert language_reason("Combien coûte un stylo?") == "non_ascii"
    assert language_reason("Was ist 2 + 2?") is None  # ASCII: the paper's rule keeps it
    assert all(language_reason(q) is None for q in NOT_ENGLISH.values())


@pytest.mark.parametrize("name", sorted(NOT_ENGLISH))
def test_language_id_catches_ascii_questions_in_other_languages(name):
    reason = language_reason(NOT_ENGLISH[name], RULE)
    assert reason is not None and reason.startswith("lang_") and reason != "lang_en", reason


def test_language_id_keeps_the_languages_asked_for():
    spanish = LanguageFilter(language_id=True, languages=["en", "es"])
    assert language_reason(NOT_ENGLISH["es"], spanish) is None
    assert language_reason(NOT_ENGLISH["fr"], spanish) is not None


def test_prose_strips_math():
    text = r"Evaluate $\log_3\frac{1}{\sqrt3}$ and \[x^2 + 1\] for x = 12.5, then \textbf{stop}."
    assert prose(text) == "Evaluate and for x then stop"


def test_too_little_prose_is_not_judged():
    assert language_reason(r"Factor $t^2-49$.", RULE) is None
    assert language_reason("Calcule 12 + 7.", RULE) is None  # 9 letters: kept


@pytest.mark.parametrize(
    "path,field", [(assets.GSM8K_TRAIN, "question"), (assets.MATH_TRAIN, "problem")]
)
def test_language_id_drops_no_real_english_question(path, field):
    rows = list(read_jsonl(assets.resolve(path)))[:1500]
    ascii_rows = [r[field] for r in rows if r[field].isascii()]
    dropped = [(q[:80], language_reason(q, RULE)) for q in ascii_rows if language_reason(q, RULE)]
    assert len(ascii_rows) > 1000 and dropped == []


def test_config_keys_and_errors():
    cfg = parse_config(
        "run_dir: x\nfilter: {language: {language_id: true, languages: [en, de]}}", "t.yaml"
    )
    lang = cfg.filter.language
    assert (lang.language_id, lang.languages, lang.min_confidence, lang.min_letters) == (
        True,
        ["en", "de"],
        0.9,
        20,
    )
    default = parse_config("run_dir: x", "t.yaml").filter.language
    assert not default.language_id and language_reason(NOT_ENGLISH["fr"], default) is None
    with pytest.raises(Exception, match="min_confidence"):
        parse_config("run_dir: x\nfilter: {language: {min_confidence: 2}}", "t.yaml")
    with pytest.raises(Exception, match="languages is empty"):
        parse_config("run_dir: x\nfilter: {language: {languages: []}}", "t.yaml")
