"""Built-in training methods; importing this package registers each of them."""

from simreal.training.methods import (
    cut,  # noqa: F401  (registers "lccut", "cut" and "fastcut")
    oasis,  # noqa: F401  (registers "oasis" and "dpgan")
    sae,  # noqa: F401  (registers "lcsae" and "sae")
    segmenter,  # noqa: F401  (registers "segmenter")
    semanticgan,  # noqa: F401  (registers "semanticgan")
    semguided,  # noqa: F401  (registers "semguided")
    spade,  # noqa: F401  (registers "spade")
)
