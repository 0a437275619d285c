"""SentencePiece BPE `tokenizer.model` files as `transformers` fast tokenizers, without the
`sentencepiece` library or a model's remote code.

internlm2-7b-reward ships its tokenizer as a custom class (`InternLM2Tokenizer`, remote code
that `AutoTokenizer` runs only with `trust_remote_code`). That class is a slow tokenizer: it
splits the text at special/added tokens, encodes each piece of text between them with
`SentencePieceProcessor.encode` and prepends BOS. Here the same is built from the model file:
the protobuf is read with transformers' bundled schema, the BPE vocabulary and its merges
(ranked by piece score, as SentencePiece merges) go into a `tokenizers` BPE with byte
fallback, and the normalizer does what SentencePiece's does (dummy "▁" prefix per text
segment, spaces as "▁"). `tokenizer_config.json` supplies the special tokens, added tokens,
`add_bos_token`/`add_eos_token` and the chat template.

Verified (tests/test_data_spm_tokenizer.py): token ids equal a reference slow tokenizer with
InternLM2Tokenizer's logic over `sentencepiece` on Mistral-7B's SentencePiece BPE model (from
`mistral-common`), plain text and InternLM2's reward chat format with its reward token.
Models this does not cover (unigram, `remove_extra_whitespaces`, whitespace as suffix) are
refused with an error rather than tokenized differently.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, processors
from tokenizers.models import BPE
from transformers import PreTrainedTokenizerFast

from sqjax.errors import SqjaxError

MODEL_FILE = "tokenizer.model"
CONFIG_FILE = "tokenizer_config.json"
SPACE = "\u2581"  # "▁", SentencePiece's visible space
BPE_TYPE = 2
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, BYTE = 1, 2, 3, 4, 6


def read_model(path: str | Path):
    """The SentencePiece ModelProto of `path` (transformers' bundled schema, protobuf only)."""
    from transformers.utils import sentencepiece_model_pb2_new as pb

    proto = pb.ModelProto()
    try:
        proto.ParseFromString(Path(path).read_bytes())
    except Exception as e:  # noqa: BLE001 - protobuf raises its own DecodeError
        raise SqjaxError(f"{path}: not a SentencePiece model ({e})") from None
    return proto


def _check_supported(proto, path: str | Path) -> None:
    t, n = proto.trainer_spec, proto.normalizer_spec
    problems = []
    if t.model_type != BPE_TYPE:
        problems.append(f"model_type {t.model_type} (only BPE, 2)")
    if n.remove_extra_whitespaces:
        problems.append("normalizer remove_extra_whitespaces")
    if t.treat_whitespace_as_suffix:
        problems.append("treat_whitespace_as_suffix")
    if not n.escape_whitespaces:
        problems.append("escape_whitespaces off")
    if problems:
        raise SqjaxError(
            f"{path}: SentencePiece settings sqjax's native loader does not reproduce: "
            f"{', '.join(problems)}; convert it to a tokenizer.json with transformers instead"
        )


def bpe_merges(vocab: dict[str, int], scores: dict[str, float]) -> list[tuple[str, str]]:
    """Merges that rebuild each piece from two vocabulary pieces, highest piece score first
    (SentencePiece BPE merges the pair whose result scores highest)."""
    merges = []
    for piece, score in scores.items():
        for i in range(1, len(piece)):
            left, right = piece[:i], piece[i:]
            if left in vocab and right in vocab:
                merges.append((-score, vocab[left], vocab[right], left, right))
    merges.sort()
    return [(left, right) for *_, left, right in merges]


def _normalizer(proto) -> normalizers.Normalizer:
    steps = []
    charsmap = proto.normalizer_spec.precompiled_charsmap
    if charsmap:
        steps.append(normalizers.Precompiled(charsmap))
    if proto.normalizer_spec.add_dummy_prefix:
        steps.append(normalizers.Prepend(SPACE))
    steps.append(normalizers.Replace(Regex(" "), SPACE))
    return normalizers.Sequence(steps)


def build_tokenizer(proto) -> Tokenizer:
    """A `tokenizers` BPE equal to the SentencePiece model on text without special tokens;
    its control, unknown and user-defined pieces are added tokens."""
    pieces = list(proto.pieces)
    vocab = {p.piece: i for i, p in enumerate(pieces)}
    scores = {p.piece: p.score for p in pieces if p.type == NORMAL}
    unk = pieces[proto.trainer_spec.unk_id].piece
    model = BPE(
        vocab=vocab,
        merges=bpe_merges(vocab, scores),
        unk_token=unk,
        fuse_unk=True,
        byte_fallback=proto.trainer_spec.byte_fallback,
    )
    tok = Tokenizer(model)
    tok.normalizer = _normalizer(proto)
    strip = 1 if proto.normalizer_spec.add_dummy_prefix else 0
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace(SPACE, " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", strip, 0),
        ]
    )
    special = [p.piece for p in pieces if p.type in (CONTROL, UNKNOWN)]
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special])
    user = [p.piece for p in pieces if p.type == USER_DEFINED]
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in user])
    return tok


def _content(token: object) -> str | None:
    return token.get("content") if isinstance(token, dict) else token  # type: ignore[return-value]


def _added_tokens(tok: Tokenizer, config: dict, where: Path) -> None:
    """The config's added tokens, each at the id the config gives it."""
    for id_str, spec in sorted(
        config.get("added_tokens_decoder", {}).items(), key=lambda kv: int(kv[0])
    ):
        token = AddedToken(
            spec["content"],
            special=spec.get("special", True),
            normalized=spec.get("normalized", False),
            lstrip=spec.get("lstrip", False),
            rstrip=spec.get("rstrip", False),
            single_word=spec.get("single_word", False),
        )
        tok.add_special_tokens([token]) if token.special else tok.add_tokens([token])
        got = tok.token_to_id(spec["content"])
        if got != int(id_str):
            raise SqjaxError(
                f"{where}: added token {spec['content']!r} has id {id_str} in the config but "
                f"{got} in {MODEL_FILE}; the two files do not belong together"
            )


def _post_processor(tok: Tokenizer, bos: str | None, eos: str | None, config: dict):
    add_bos = config.get("add_bos_token", True) and bos is not None
    add_eos = config.get("add_eos_token", False) and eos is not None
    single = ([f"{bos}:0"] if add_bos else []) + ["$A:0"] + ([f"{eos}:0"] if add_eos else [])
    pair = single + ["$B:1"] + ([f"{eos}:1"] if add_eos else [])
    used = {t for t, on in ((bos, add_bos), (eos, add_eos)) if on}
    return processors.TemplateProcessing(
        single=single, pair=pair, special_tokens=[(t, tok.token_to_id(t)) for t in used]
    )


def load_spm_tokenizer(directory: str | Path) -> PreTrainedTokenizerFast:
    """The fast tokenizer of a directory holding a SentencePiece BPE `tokenizer.model` and
    (optionally) `tokenizer_config.json`, built without remote code."""
    directory = Path(directory)
    model_path = directory / MODEL_FILE
    proto = read_model(model_path)
    _check_supported(proto, model_path)
    config_path = directory / CONFIG_FILE
    config = json.loads(config_path.read_text(encoding="utf-8")) if config_path.is_file() else {}
    tok = build_tokenizer(proto)
    _added_tokens(tok, config, config_path)
    pieces, spec = proto.pieces, proto.trainer_spec
    bos = _content(config.get("bos_token")) or (
        pieces[spec.bos_id].piece if spec.bos_id >= 0 else None
    )
    eos = _content(config.get("eos_token")) or (
        pieces[spec.eos_id].piece if spec.eos_id >= 0 else None
    )
    unk = _content(config.get("unk_token")) or pieces[spec.unk_id].piece
    pad = _content(config.get("pad_token"))
    tok.post_processor = _post_processor(tok, bos, eos, config)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=bos,
        eos_token=eos,
        unk_token=unk,
        pad_token=pad,
        clean_up_tokenization_spaces=config.get("clean_up_tokenization_spaces", False),
        model_max_length=config.get("model_max_length", int(1e30)),
        name_or_path=str(directory),
    )
    if config.get("chat_template"):
        fast.chat_template = config["chat_template"]
    return fast


def needs_native_loading(directory: str | Path) -> bool:
    """True for a directory whose tokenizer is a SentencePiece model behind a remote-code
    class (`auto_map` in its tokenizer_config.json) and has no tokenizer.json."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not (directory / MODEL_FILE).is_file() or (directory / "tokenizer.json").is_file():
        return False
    if not config_path.is_file():
        return False
    config = json.loads(config_path.read_text(encoding="utf-8"))
    return "AutoTokenizer" in json.dumps(config.get("auto_map", {}))
