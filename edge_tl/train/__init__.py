"""Transfer learning: cached backbone features, a new head, and the bundle it produces."""

from edge_tl.train.pipeline import TrainConfig, train_bundle

__all__ = ["TrainConfig", "train_bundle"]
