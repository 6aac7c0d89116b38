"""Built-in training methods; importing this package registers each of them."""

from simreal.training.methods import segmenter  # noqa: F401  (registers "segmenter")
from simreal.training.methods import oasis  # noqa: F401  (registers "oasis" and "dpgan")
from simreal.training.methods import spade  # noqa: F401  (registers "spade")
