"""Test set-up: 8 fake CPU devices for sharding tests, float32 matmuls for parity."""

import os

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax

jax.config.update("jax_default_matmul_precision", "highest")

# Identical programs (the same tiny model built by several test files, the real SmolLM2 in
# several slow tests) compile once per machine, not once per test.
from sqjax import compile_cache

compile_cache.enable(os.path.join(os.path.expanduser("~"), ".cache", "sqjax", "xla-tests"))

# gs:// tests: a GCS emulator for the session, a fresh bucket prefix per test.
from gcs_emulator import bucket_url, gcs_emulator  # noqa: F401
