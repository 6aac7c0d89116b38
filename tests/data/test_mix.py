"""Weighted mixes of stores: sampling shares follow the weights, mix files, resumable positions, bad mixes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from torch.utils.data import DataLoader, Dataset

from simreal.data.dataset import FrameDataset
from simreal.data.mix import (
    MixedFrames,
    MixError,
    MixPart,
    load_mix_dataset,
    read_mix_file,
    write_mix_file,
)
from simreal.data.store import FrameStore
from simreal.training.data import InfiniteLoader
from simreal.training.methods.segmenter import SegmenterMethod


def make_store(path: Path, frames: int, class_set: str = "shared16") -> Path:
    rng = np.random.default_rng(frames)
    store = FrameStore.create(path, height=8, width=8, class_set=class_set)
    labels = rng.integers(0, 2, (frames, 8, 8), dtype=np.uint8)
    store.append(rng.integers(0, 256, (frames, 8, 8, 3), dtype=np.uint8), labels, [{} for _ in range(frames)])
    return path


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mix")
    return make_store(root / "small", 3), make_store(root / "large", 12)


class Indices(Dataset):
    """Samples that are just their index: sampling statistics without reading frames."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        return {"index": index}


def test_sampling_shares_follow_the_weights_not_the_store_sizes() -> None:
    mix = MixedFrames([Indices(3), Indices(12), Indices(5)], [4, 1, 5])  # 40% from the 3-sample part
    loader = InfiniteLoader(mix, batch_size=20, seed=3)
    batches = [next(loader) for _ in range(500)]  # 10000 samples
    drawn = np.concatenate([batch["store"].numpy() for batch in batches])
    shares = np.bincount(drawn, minlength=3) / len(drawn)
    assert np.allclose(shares, [0.4, 0.1, 0.5], atol=0.02), shares  # binomial std <= 0.005
    # within a part, samples are drawn uniformly
    middle = np.concatenate([batch["index"][batch["store"] == 1].numpy() for batch in batches])
    counts = np.bincount(middle, minlength=12)
    assert counts.min() > 0.6 * len(middle) / 12 and counts.max() < 1.4 * len(middle) / 12


def test_weighted_loader_resumes_at_the_same_position(stores: tuple[Path, Path]) -> None:
    mix = MixedFrames([FrameDataset(stores[0], hflip=False), FrameDataset(stores[1], hflip=False)], [1, 1])
    first = InfiniteLoader(mix, batch_size=4, seed=7)
    for _ in range(5):  # crosses an epoch boundary (15 samples, 3 batches per epoch)
        next(first)
    resumed = InfiniteLoader(mix, batch_size=4, seed=7)
    resumed.load_state_dict(first.state_dict())
    for _ in range(3):
        a, b = next(first), next(resumed)
        assert a["store"].tolist() == b["store"].tolist() and a["index"].tolist() == b["index"].tolist()


def test_mix_file_round_trip_normalises_weights(stores: tuple[Path, Path], tmp_path: Path) -> None:
    path = write_mix_file(tmp_path / "m.yaml", [MixPart(str(stores[0]), 3), MixPart(str(stores[1]), 1)])
    parts = read_mix_file(path)
    assert [p.weight for p in parts] == [0.75, 0.25] and parts[0].store == str(stores[0])
    mix = load_mix_dataset(path, FrameDataset)
    assert len(mix) == 15 and mix.class_set.name == "shared16"
    assert mix.sample_weights[:3].sum() == pytest.approx(0.75) and mix.sample_weights.sum() == pytest.approx(1.0)


def test_segmenter_trains_on_a_mix_file(stores: tuple[Path, Path], tmp_path: Path) -> None:
    path = write_mix_file(tmp_path / "m.yaml", [MixPart(str(stores[0]), 1), MixPart(str(stores[1]), 1)])
    cfg = OmegaConf.create({"crop": [8, 8], "hflip": True})
    assert isinstance(SegmenterMethod.make_dataset(cfg, "data", str(path)), MixedFrames)
    assert isinstance(SegmenterMethod.make_dataset(cfg, "data", str(stores[0])), FrameDataset)  # unchanged


def test_bad_mixes_are_refused(stores: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(MixError, match="must be a number > 0"):
        write_mix_file(tmp_path / "m.yaml", [MixPart(str(stores[0]), 0)])
    (tmp_path / "bad.yaml").write_text("parts: 3\n")
    with pytest.raises(MixError, match="parts:"):
        read_mix_file(tmp_path / "bad.yaml")
    other = make_store(tmp_path / "cityscapes", 2, class_set="cityscapes19")
    with pytest.raises(MixError, match="one class set"):
        MixedFrames([FrameDataset(stores[0]), FrameDataset(other)], [1, 1])


def test_mixed_frames_for_your_own_loop_sample_by_weight_with_a_seed(stores: tuple[Path, Path]) -> None:
    mix = MixedFrames.of_stores(list(stores), weights=[3, 1], hflip=False)  # 3 of 4 frames from the 3-frame store
    first = list(mix.sampler(num_samples=4000, seed=5))
    assert first == list(mix.sampler(num_samples=4000, seed=5)) != list(mix.sampler(num_samples=4000, seed=6))
    shares = np.bincount([mix.store_of(i) for i in first], minlength=2) / len(first)
    assert np.allclose(shares, [0.75, 0.25], atol=0.03), shares
    loader = DataLoader(mix, batch_size=8, sampler=mix.sampler(num_samples=16, seed=0))
    batch = next(iter(loader))
    assert batch["image"].shape == (8, 3, 8, 8) and set(batch["store"].tolist()) <= {0, 1}
