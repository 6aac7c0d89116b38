"""Built-in training methods; importing this package registers each of them."""

from simreal.training.methods import (
    sae,  # noqa: F401  (registers "lcsae" and "sae")
    segmenter,  # noqa: F401  (registers "segmenter")
)
