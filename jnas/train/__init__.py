"""Training architectures standalone with optax (NAS-Bench-201 protocol by default)."""

from jnas.train.models import SPACES, realise
from jnas.train.optim import sgd_cosine
from jnas.train.trainer import TrainConfig, TrainState, evaluate, fit, read_metrics

__all__ = ["SPACES", "TrainConfig", "TrainState", "evaluate", "fit", "read_metrics", "realise", "sgd_cosine"]
