"""The chat-template pieces ScaleQuest needs, derived from a tokenizer's own template.

Each piece is found by rendering the template with sentinel contents and cutting at the
sentinels, so any template works and nothing is hand-copied per model family:

- `prefix`: the text before a user message's content in [optional system, user] — the
  pre-query prefix that question generation samples from (Qwen2 ChatML: system turn +
  `<|im_start|>user\\n`; DeepSeek: BOS + `User: `; Llama-3: BOS + user header).
- `user_suffix`: what the template writes right after the user content when the conversation
  ends there (ChatML `<|im_end|>\\n`, DeepSeek `\\n\\n`, Llama-3 `<|eot_id|>`).
- `end_of_turn`: what a QFT example appends to a bare question: `user_suffix` up to and
  including its first special token, or, when it has none, `user_suffix` + EOS (the authors'
  texts: `...{q}<|im_end|>` for Qwen2, `User: {q}\\n\\n<｜end▁of▁sentence｜>` for DeepSeek).
- `answer_suffix`: what follows the user content in a prompt for answering (user turn end +
  generation prompt); `reply_lead`: template text between that prompt and the reply (DeepSeek's
  space after "Assistant:"); `assistant_end`: the marker that ends a reply, cut after its first
  special token like `end_of_turn` (ChatML `<|im_end|>`, DeepSeek EOS, Llama-3 `<|eot_id|>`).
- `stop_strings` / `stop_ids`: special tokens at which a sampled user turn ends: the EOS, BOS
  and pad tokens, the end-of-turn token, and the special tokens of the prefix (a model that
  starts a new turn has finished its question).

All texts contain special tokens literally (BOS included where the template writes it); encode
them with `add_special_tokens=False` (see `encoder`), or the BOS would be doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqjax.errors import SqjaxError

if TYPE_CHECKING:  # a type only: importing transformers costs seconds
    from transformers import PreTrainedTokenizerBase

SENTINEL = "SQJAXSENTINELQ"
ANSWER_SENTINEL = "SQJAXSENTINELA"


@dataclass(frozen=True)
class ChatFormat:
    """Template pieces for one tokenizer (see the module docstring)."""

    prefix: str
    user_suffix: str
    end_of_turn: str
    answer_suffix: str
    reply_lead: str
    assistant_end: str
    stop_strings: tuple[str, ...]
    stop_ids: tuple[int, ...]

    def qft_text(self, question: str) -> str:
        """QFT training text: prefix + question + end-of-turn (loss on every token)."""
        return self.prefix + self.qft_completion(question)

    def qft_completion(self, question: str) -> str:
        """The part of the QFT text after the prefix (encode it apart from the prefix)."""
        return question.strip() + self.end_of_turn

    def chat_prompt(self, question: str) -> str:
        """Prompt for answering `question`: user turn then the generation prompt."""
        return self.prefix + question.strip() + self.answer_suffix

    def completion_text(self, response: str) -> str:
        """What follows `chat_prompt` in a finished chat: the reply and its end marker."""
        return self.reply_lead + response.strip() + self.assistant_end


def _render(tokenizer: PreTrainedTokenizerBase, messages: list[dict], generation: bool) -> str:
    if not tokenizer.chat_template:
        raise SqjaxError(
            f"tokenizer {tokenizer.name_or_path!r} has no chat_template; set one "
            f"(sqjax/resources/chat_templates/) or use a chat model's tokenizer"
        )
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)


def _split_once(text: str, sentinel: str, template_name: str) -> tuple[str, str]:
    if text.count(sentinel) != 1:
        raise SqjaxError(
            f"chat template of {template_name!r} rendered the message content "
            f"{text.count(sentinel)} times (expected once): {text!r}; use a template that "
            f"writes each message's content verbatim"
        )
    before, _, after = text.partition(sentinel)
    return before, after


def special_tokens(tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """All special token strings of the tokenizer (added tokens marked special)."""
    specials = {t.content for t in tokenizer.added_tokens_decoder.values() if t.special}
    specials.update(tokenizer.all_special_tokens)
    return sorted(specials)


def _first_special(text: str, specials: list[str]) -> tuple[int, str] | None:
    hits = [(text.find(s), -len(s), s) for s in specials if s and s in text]
    if not hits:
        return None
    pos, _, token = min(hits)
    return pos, token


def _cut_after_special(
    suffix: str, first: tuple[int, str] | None, eos: str | None, name: str
) -> str:
    """`suffix` up to and including its first special token, else `suffix` + EOS."""
    if first is not None:
        return suffix[: first[0] + len(first[1])]
    if not eos:
        raise SqjaxError(f"{name!r}: a chat turn ends with no special token and there is no EOS")
    return suffix + eos


def _specials_in(text: str, specials: list[str]) -> list[str]:
    return [s for s in specials if s and s in text]


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    ids = tokenizer(token, add_special_tokens=False)["input_ids"]
    if len(ids) != 1:
        raise SqjaxError(f"stop token {token!r} encodes to {ids}, not one id; check the tokenizer")
    return ids[0]


def chat_format(tokenizer: PreTrainedTokenizerBase, system: str | None = None) -> ChatFormat:
    """Derives the ChatFormat of `tokenizer`'s chat template.

    `system` adds a system message; None keeps the template's default (Qwen2 and SmolLM2
    insert their own system turn when there is none).
    """
    name = tokenizer.name_or_path or type(tokenizer).__name__
    head = [{"role": "system", "content": system}] if system is not None else []
    user = head + [{"role": "user", "content": SENTINEL}]
    prefix, user_suffix = _split_once(_render(tokenizer, user, False), SENTINEL, name)
    prefix_g, answer_suffix = _split_once(_render(tokenizer, user, True), SENTINEL, name)
    chat = user + [{"role": "assistant", "content": ANSWER_SENTINEL}]
    full = _render(tokenizer, chat, False)
    prefix_c, rest = _split_once(full, SENTINEL, name)
    middle, assistant_suffix = _split_once(rest, ANSWER_SENTINEL, name)
    if prefix_g != prefix or prefix_c != prefix or not middle.startswith(answer_suffix):
        raise SqjaxError(
            f"chat template of {name!r} renders the user turn differently with a generation "
            f"prompt or a reply ({prefix!r} / {prefix_g!r}, {answer_suffix!r} / {middle!r}); "
            f"sqjax needs prompt + reply to extend the prompt"
        )
    # Template text between the generation prompt and the reply (DeepSeek writes "Assistant: "
    # after the prompt's "Assistant:") belongs to the completion.
    reply_lead = middle[len(answer_suffix) :]
    specials = special_tokens(tokenizer)
    first = _first_special(user_suffix, specials)
    end_of_turn = _cut_after_special(user_suffix, first, tokenizer.eos_token, name)
    assistant_end = _cut_after_special(
        assistant_suffix, _first_special(assistant_suffix, specials), tokenizer.eos_token, name
    )
    stops = {t for t in (tokenizer.eos_token, tokenizer.bos_token, tokenizer.pad_token) if t}
    if first is not None:
        stops.add(first[1])
    stops.update(_specials_in(prefix, specials))
    stop_strings = tuple(sorted(stops))
    return ChatFormat(
        prefix=prefix,
        user_suffix=user_suffix,
        end_of_turn=end_of_turn,
        answer_suffix=answer_suffix,
        reply_lead=reply_lead,
        assistant_end=assistant_end,
        stop_strings=stop_strings,
        stop_ids=tuple(_token_id(tokenizer, s) for s in stop_strings),
    )


def encoder(tokenizer: PreTrainedTokenizerBase) -> Callable[[str], list[int]]:
    """text -> token ids, special tokens parsed from the text and none added."""

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    return encode
