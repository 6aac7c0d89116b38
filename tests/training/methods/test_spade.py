"""The ``spade`` method's config: typed by ``SPADETrainConfig``, checked where the values enter."""

from __future__ import annotations

import pytest

from simreal.errors import ConfigError
from simreal.training.config import compose_training_config


def test_values_arrive_with_the_types_of_the_schema() -> None:
    cfg = compose_training_config("spade", ["preset=tiny", "loss.feat=5", "model.use_vae=true", "crop=null"])
    assert cfg.loss.feat == 5.0 and isinstance(cfg.loss.feat, float)
    assert cfg.model.use_vae is True and cfg.crop is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.num_d=abc", r"model\.num_d=abc.*could not be converted to Integer"),
        ("model.use_vae=abc", r"model\.use_vae=abc.*not a valid bool"),
        ("loss.kld=abc", r"loss\.kld=abc.*could not be converted to Float"),
        ("model.num_blocks=6", r"model\.num_blocks"),
        ("ema.decay=0.9", r"ema"),  # SPADE keeps no EMA generator
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_training_config("spade", ["preset=tiny", override])
