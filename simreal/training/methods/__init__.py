"""Built-in training methods; importing this package registers each of them."""

from simreal.training.methods import (
    oasis,  # noqa: F401  (registers "oasis" and "dpgan")
    segmenter,  # noqa: F401  (registers "segmenter")
    spade,  # noqa: F401  (registers "spade")
)
