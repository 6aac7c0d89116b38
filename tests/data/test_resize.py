from __future__ import annotations

import numpy as np
import pytest

from simreal.data.resize import parse_size, resize_pair
from simreal.errors import ConfigError


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_label_downscale_samples_pixel_centres(factor: int) -> None:
    # Every output pixel takes the input pixel under its centre: rows/cols factor//2, factor//2 + factor, ...
    # (a half-pixel offset would take rows 0, factor, ...: the top-left corner of each block).
    size = 4 * factor
    label = np.arange(size * size, dtype=np.int64).reshape(size, size) % 251
    label = label.astype(np.uint8)
    rgb = np.zeros((size, size, 3), np.uint8)
    _, out, _ = resize_pair(rgb, label, (4, 4))
    centre = factor // 2
    expected = label[centre::factor, centre::factor]
    np.testing.assert_array_equal(out, expected)


def test_label_upscale_repeats_each_pixel() -> None:
    label = np.array([[1, 2], [3, 4]], np.uint8)
    _, out, _ = resize_pair(np.zeros((2, 2, 3), np.uint8), label, (4, 4))
    np.testing.assert_array_equal(out, np.repeat(np.repeat(label, 2, 0), 2, 1))


@pytest.mark.parametrize("text", ["512", "512x", "axb", "0x256", "-512x256", "512*256"])
def test_bad_size_text_is_a_config_error(text: str) -> None:
    with pytest.raises(ConfigError, match="512x256|positive"):
        parse_size(text)
