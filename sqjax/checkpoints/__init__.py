"""Checkpoints: HF safetensors directories (read streamed, written sharded), GGUF files, and the
public `load_model` / `load_tokenizer` / `export_hf` API (sqjax.checkpoints.api)."""
