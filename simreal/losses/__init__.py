"""Training losses (pure functions and loss objects; the training loops live elsewhere)."""

from simreal.losses.sae import SAELoss, SAELossConfig, SimRealBatch, build_optimizers

__all__ = ["SAELoss", "SAELossConfig", "SimRealBatch", "build_optimizers"]
