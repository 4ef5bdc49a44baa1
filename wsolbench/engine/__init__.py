"""The training engine: configuration, training (alone or under torchrun), checkpoints,
inference and sharded evaluation, one module each:

    from wsolbench.engine.train import train          # train(TrainConfig(...)) -> checkpoint
    from wsolbench.engine.checkpoint import load_model
    from wsolbench.engine.infer import predict        # batches of logits, maps, taps
    from wsolbench.engine.evaluate import evaluate    # sharded over ranks, merged exactly

(Functions are not re-exported here: `train` and `evaluate` would shadow their modules.)
"""
from wsolbench.engine.checkpoint import checkpoint_hash, load_checkpoint, load_model
from wsolbench.engine.config import TrainConfig

__all__ = ["TrainConfig", "checkpoint_hash", "load_checkpoint", "load_model"]
