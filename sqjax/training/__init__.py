"""Training: SFT and DPO losses, the Optax optimizer, one jitted train step, Grain inputs,
Orbax checkpoints and the loop; `sqjax.training.api.train(cfg)` runs it all."""
