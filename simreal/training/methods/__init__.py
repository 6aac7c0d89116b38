"""Built-in training methods; importing this package registers each of them."""

from simreal.training.methods import segmenter  # noqa: F401  (registers "segmenter")
