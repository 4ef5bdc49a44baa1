"""The training engine: configuration, training (alone or under torchrun), checkpoints,
inference and sharded evaluation, one module each:

    from wsolbench.engine.train import train          # train(TrainConfig(...)) -> checkpoint
    from wsolbench.engine.checkpoint import load_model
    from wsolbench.engine.checkpoint import import_reference_checkpoint  # reference-code weights
    from wsolbench.engine.infer import predict        # batches of logits, maps, taps
    from wsolbench.engine.evaluate import score_split # every protocol, sharded, merged exactly

(Functions are not re-exported here: `train` would shadow its module.)
"""

import importlib

# Resolved on first use, so that `import wsolbench.engine.config` (the CLI's parsers) does not
# pull in torch and `wsolbench --help` stays fast.
_EXPORTS = {
    "TrainConfig": "wsolbench.engine.config",
    "checkpoint_hash": "wsolbench.engine.checkpoint",
    "load_checkpoint": "wsolbench.engine.checkpoint",
    "load_model": "wsolbench.engine.checkpoint",
    "import_reference_checkpoint": "wsolbench.engine.checkpoint",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'wsolbench.engine' has no attribute {name!r}")
