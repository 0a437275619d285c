"""A tiny character-level BPE tokenizer (built in memory) for stop-string and chat tests.

Multi-character tokens ("th", "the", "an", "in") make stop strings span token boundaries.
"""

from tokenizers import Tokenizer, decoders, models
from transformers import PreTrainedTokenizerFast

CHARS = list("abcdefghijklmnopqrstuvwxyz .?!:\n")
MERGES = [("t", "h"), ("th", "e"), ("a", "n"), ("i", "n")]


def char_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {"<pad>": 0, "<eos>": 1}
    for c in CHARS:
        vocab[c] = len(vocab)
    for a, b in MERGES:
        vocab[a + b] = len(vocab)
    tk = Tokenizer(models.BPE(vocab=vocab, merges=MERGES))
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<eos>", pad_token="<pad>")
    tok.chat_template = "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
    return tok
