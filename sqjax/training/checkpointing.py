"""Orbax train checkpoints: parameters, optimizer state, step and the data-iterator position.

Saves are asynchronous (the step loop continues while arrays are written) and atomic: a
checkpoint killed mid-write is never listed, so a restart resumes from the last complete one.
The directory may be gs:// (Orbax's own commit protocol for object storage applies there).
"""

from __future__ import annotations

import os

import grain
import jax
import orbax.checkpoint as ocp

from sqjax import paths
from sqjax.training.step import TrainState


def _as_dict(state: TrainState) -> dict:
    return {"step": state.step, "params": state.params, "opt_state": state.opt_state}


class Checkpointer:
    """Keeps the last `keep` checkpoints of a run under `directory`."""

    def __init__(self, directory: str | os.PathLike, keep: int = 2, use_async: bool = True):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep, enable_async_checkpointing=use_async, create=True
        )
        path = paths.as_path(directory)
        self.directory = str(path)
        target = path if paths.is_remote(path) else path.absolute()
        self._manager = ocp.CheckpointManager(target, options=options)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def save(self, step: int, state: TrainState, data_iterator: grain.DatasetIterator) -> None:
        """Starts saving `state` and the iterator position as checkpoint `step`."""
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(_as_dict(state)),
            data=grain.checkpoint.CheckpointSave(data_iterator),
        )
        self._manager.save(step, args=args, force=True)

    def restore(self, step: int, sharding: TrainState, abstract: TrainState,
                data_iterator: grain.DatasetIterator) -> TrainState:
        """The saved state, placed by `sharding`; `data_iterator` is moved to its position."""
        target = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), _as_dict(abstract), _as_dict(sharding)
        )
        args = ocp.args.Composite(
            state=ocp.args.StandardRestore(target), data=grain.checkpoint.CheckpointRestore(data_iterator)
        )
        restored = self._manager.restore(step, args=args).state
        return TrainState(restored["step"], restored["params"], restored["opt_state"])

    def wait(self) -> None:
        """Blocks until pending saves are on disk."""
        self._manager.wait_until_finished()

    def close(self) -> None:
        self._manager.close()
