"""Data: JSONL io, chat templates, tokenize/mask/pack, benchmark loaders."""
