"""The configs of ``oasis`` and ``dpgan``: typed by ``OASISTrainConfig`` / ``DPGANTrainConfig``, checked on entry."""

from __future__ import annotations

import pytest

from simreal.errors import ConfigError
from simreal.training.config import compose_training_config


@pytest.mark.parametrize("method", ["oasis", "dpgan"])
def test_values_arrive_with_the_types_of_the_schema(method: str) -> None:
    cfg = compose_training_config(method, ["preset=tiny", "loss.labelmix=2", "ema.bn_batches=3", "crop=[32,64]"])
    assert cfg.loss.labelmix == 2.0 and isinstance(cfg.loss.labelmix, float)
    assert cfg.ema.bn_batches == 3 and list(cfg.crop) == [32, 64]
    assert cfg.model.discriminator == "own"


@pytest.mark.parametrize(
    ("method", "override", "message"),
    [
        ("oasis", "model.z_dim=abc", r"model\.z_dim=abc.*could not be converted to Integer"),
        ("oasis", "loss.balance=abc", r"loss\.balance=abc.*not a valid bool"),
        ("oasis", "ema.decay=abc", r"ema\.decay=abc.*could not be converted to Float"),
        ("oasis", "crop=abc", r"crop=abc"),
        ("oasis", "model.pyramid_channels=8", r"model\.pyramid_channels"),  # DP-GAN's, not OASIS's
        ("oasis", "loss.patch=1", r"loss\.patch"),
        ("dpgan", "model.pyramid_channels=abc", r"model\.pyramid_channels=abc.*could not be converted to Integer"),
        ("dpgan", "loss.alignment=abc", r"loss\.alignment=abc.*could not be converted to Float"),
        ("dpgan", "optim.lr_g=abc", r"optim\.lr_g=abc.*could not be converted to Float"),
        ("dpgan", "loss.kld=1", r"loss\.kld"),
        ("dpgan", "outer_segmenter=run", r"outer_segmenter"),
    ],
)
def test_wrong_types_and_unknown_keys_are_refused_by_name(method: str, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compose_training_config(method, ["preset=tiny", override])
