"""The ``segmenter`` method's config: typed by ``SegmenterTrainConfig``, checked where the values enter."""

from __future__ import annotations

import pytest

from simreal.errors import ConfigError
from simreal.training.config import compose_training_config


def test_values_arrive_with_the_types_of_the_schema() -> None:
    cfg = compose_training_config("segmenter", ["preset=tiny", "optim.lr=1", "model.decoder_channels=48"])
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)
    assert cfg.model.decoder_channels == 48 and cfg.model.encoder_depth is None


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("eval_batch_size=abc", r"eval_batch_size=abc.*could not be converted to Integer"),
        ("optim.poly_power=abc", r"optim\.poly_power=abc.*could not be converted to Float"),
        ("model.decoder_channels=abc", r"model\.decoder_channels=abc.*could not be converted to Integer"),
        ("hflip=abc", r"hflip=abc.*not a valid bool"),
        ("model.encoder_widths=3", r"model\.encoder_widths"),
        ("optim.nesterov=true", r"optim\.nesterov"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_training_config("segmenter", ["preset=tiny", override])
