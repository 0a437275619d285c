"""Sampling and scoring: vLLM-like `generate` with continuous batching, log-prob and reward
scoring. Public entry points live in `sqjax.sampling.api`."""
