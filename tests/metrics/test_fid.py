"""FID/KID: equality with pytorch-fid (features, statistics, distance), KID by hand, weights lookup and download.

No real Inception weights exist here: the pytorch-fid architecture is built with random (seeded) weights, saved to
a local file and loaded through simreal's own loading path. There is no internet either: the download branch runs
against a stand-in for ``torch.hub.load_state_dict_from_url``.
"""

from __future__ import annotations

from pathlib import Path
from unittest import mock
from urllib.error import URLError

import numpy as np
import pytest
import torch
from inception import make_random_inception_weights, no_download
from PIL import Image
from pytorch_fid import inception as pfid_inception
from pytorch_fid.fid_score import calculate_frechet_distance, get_activations

from simreal.metrics.fid import (
    OFFLINE_ENV,
    WEIGHTS_ENV,
    WEIGHTS_FILENAME,
    FeatureSetError,
    InceptionWeightsError,
    activation_statistics,
    fid_from_features,
    frechet_distance,
    inception_features,
    kernel_inception_distance,
    load_inception,
    polynomial_mmd_unbiased,
    resolve_inception_weights,
)

# pytorch-fid's own sqrtm warns on rank-deficient covariances and about a scipy deprecation; both are expected here
pytestmark = pytest.mark.filterwarnings("ignore:The `disp` argument", "ignore:Matrix is singular")


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_random_inception_weights(tmp_path_factory.mktemp("inception") / "random_inception.pth")


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty torch hub cache, no weights env var, and a loud failure on any download attempt."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(pfid_inception, "load_state_dict_from_url", no_download)
    return tmp_path / "torch_home"


def pytorch_fid_model(weights: Path, dims: int) -> pfid_inception.InceptionV3:
    """pytorch-fid's model built its own way, with its URL download answered by the local file."""
    state = torch.load(weights, weights_only=True)
    with mock.patch.object(pfid_inception, "load_state_dict_from_url", return_value=state):
        return pfid_inception.InceptionV3([pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]]).eval()


def two_feature_sets(n1: int, n2: int, dims: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    mixing = rng.normal(size=(dims, dims)) / np.sqrt(dims)
    first = rng.normal(size=(n1, dims)) @ mixing
    second = (rng.normal(size=(n2, dims)) * 1.5 + 0.3) @ mixing + rng.gamma(2.0, size=(n2, dims))
    return first, second


@pytest.mark.parametrize("n1,n2,dims", [(120, 90, 32), (20, 15, 64)])
def test_frechet_distance_equals_pytorch_fid(n1: int, n2: int, dims: int) -> None:
    first, second = two_feature_sets(n1, n2, dims)
    mu1, sigma1 = activation_statistics(first)
    mu2, sigma2 = activation_statistics(second)
    np.testing.assert_allclose(sigma1, np.cov(first, rowvar=False))
    expected = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
    assert frechet_distance(mu1, sigma1, mu2, sigma2) == pytest.approx(expected, rel=1e-3)
    # (20, 15, 64) takes the N x N path (fewer samples than dimensions); it must agree as well
    assert fid_from_features(first, second) == pytest.approx(expected, rel=1e-3)
    assert fid_from_features(first, first) == pytest.approx(0.0, abs=1e-6)


def test_fid_rejects_unusable_feature_sets() -> None:
    with pytest.raises(FeatureSetError, match="at least 2"):
        fid_from_features(np.zeros((1, 8)), np.zeros((5, 8)))
    with pytest.raises(FeatureSetError, match="dimensions differ"):
        fid_from_features(np.zeros((4, 8)), np.ones((5, 6)))


@pytest.mark.parametrize("dims", [2048, 192])
def test_full_path_equals_pytorch_fid_on_image_files(weights: Path, tmp_path: Path, dims: int) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 40, 56, 3), dtype=np.uint8)
    images[3:] = (images[3:] * 0.6).astype(np.uint8)  # a second, darker set
    files = []
    for i, image in enumerate(images):
        files.append(tmp_path / f"{i}.png")
        Image.fromarray(image).save(files[-1])

    ours = inception_features(load_inception(weights, dims=dims), images)
    theirs = get_activations(files, pytorch_fid_model(weights, dims), batch_size=6, dims=dims, num_workers=0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    if dims == 2048:
        return  # scipy's sqrtm on 2048 x 2048 takes too long here; 192-d covers the distance on real features
    expected = calculate_frechet_distance(*activation_statistics(theirs[:3]), *activation_statistics(theirs[3:]))
    assert fid_from_features(ours[:3], ours[3:]) == pytest.approx(expected, rel=1e-3)


def hand_mmd(x: np.ndarray, y: np.ndarray) -> float:
    def k(a: np.ndarray, b: np.ndarray) -> float:
        return float((a @ b / len(a) + 1.0) ** 3)

    m = len(x)
    within_x = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    within_y = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    return within_x / (m * (m - 1)) + within_y / (m * (m - 1)) - 2 * across / m**2


def test_kid_equals_hand_computed_unbiased_mmd() -> None:
    rng = np.random.default_rng(1)
    fake, real = rng.normal(size=(7, 5)), rng.normal(0.5, 1.2, size=(7, 5))
    expected = hand_mmd(fake, real)
    assert polynomial_mmd_unbiased(fake, real) == pytest.approx(expected, rel=1e-9)
    mean, std, subset_size = kernel_inception_distance(fake, real, num_subsets=4)
    # equal sizes below 1000: every subset would be the whole set, so KID is computed once, without a spread
    assert subset_size == 7
    assert mean == pytest.approx(expected, rel=1e-9)
    assert std is None


def test_kid_subsets_of_large_sets_and_small_unequal_sets() -> None:
    rng = np.random.default_rng(2)
    same_a, same_b, shifted = rng.normal(size=(1100, 4)), rng.normal(size=(1200, 4)), rng.normal(1, 1, (1050, 4))
    mean_same, std_same, size = kernel_inception_distance(same_a, same_b, num_subsets=3)
    mean_shifted, _, _ = kernel_inception_distance(shifted, same_b, num_subsets=3)
    assert size == 1000
    assert abs(mean_same) < 3 * std_same + 0.01 < mean_shifted
    _, std_small, small_size = kernel_inception_distance(same_a[:5], same_b[:9], num_subsets=6)
    assert small_size == 5 and std_small > 0  # the larger set is subsampled differently each time
    _, std_one, _ = kernel_inception_distance(same_a[:5], same_b[:9], num_subsets=1)
    assert std_one is None  # one subset: no spread to report
    with pytest.raises(FeatureSetError, match="at least 2"):
        kernel_inception_distance(same_a[:1], same_b)


def test_missing_weights_fail_offline_with_instructions(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(InceptionWeightsError) as err:
        load_inception()
    message = str(err.value)
    assert str(offline / "hub" / "checkpoints" / WEIGHTS_FILENAME) in message
    assert WEIGHTS_ENV in message and "--inception-weights" in message and "pt_inception" in message
    assert f"{OFFLINE_ENV}=1" in message and "downloads are disabled" in message
    assert "simreal fid-weights" in message
    monkeypatch.setenv(WEIGHTS_ENV, "/nowhere/weights.pth")
    with pytest.raises(InceptionWeightsError, match="/nowhere/weights.pth"):
        load_inception()
    with pytest.raises(InceptionWeightsError, match="elsewhere.pth"):
        load_inception("/nowhere/elsewhere.pth")


def test_weights_found_in_hub_cache_and_env(offline: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cached = offline / "hub" / "checkpoints" / WEIGHTS_FILENAME
    cached.parent.mkdir(parents=True)
    cached.symlink_to(weights)
    probe = np.full((1, 32, 32, 3), 128, np.uint8)
    from_cache = inception_features(load_inception(dims=64), probe)
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    cached.unlink()
    np.testing.assert_array_equal(inception_features(load_inception(dims=64), probe), from_cache)


def test_wrong_weights_file_is_refused(offline: Path, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pth"
    torch.save(torch.nn.Linear(3, 4).state_dict(), wrong)
    with pytest.raises(InceptionWeightsError, match="does not hold the FID Inception weights"):
        load_inception(wrong)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(InceptionWeightsError, match="cannot read"):
        load_inception(garbage)
    with pytest.raises(FeatureSetError, match="dims"):
        load_inception(wrong, dims=100)


class FakeHub:
    """Stands in for ``torch.hub.load_state_dict_from_url``: records the calls, then stores ``weights`` in the hub
    cache and returns the state dict like the real download, or raises ``error``."""

    def __init__(self, weights: Path | None = None, error: Exception | None = None) -> None:
        self.weights, self.error, self.urls = weights, error, []

    def __call__(self, url: str, *args: object, **kwargs: object) -> dict:
        self.urls.append(url)
        if self.error is not None:
            raise self.error
        state = torch.load(self.weights, weights_only=True)
        target = Path(torch.hub.get_dir()) / "checkpoints" / Path(url).name
        target.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, target)
        return state


def test_download_fills_the_hub_cache_once(offline: Path, weights: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(OFFLINE_ENV)
    hub = FakeHub(weights)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", hub)
    with pytest.raises(InceptionWeightsError, match="downloads are disabled"):
        load_inception(offline=True)  # --offline wins over an online machine
    with pytest.raises(InceptionWeightsError, match="missing.pth"):
        load_inception(Path("/nowhere/missing.pth"))  # an explicit file is never replaced by a download
    assert hub.urls == []

    probe = np.full((1, 32, 32, 3), 90, np.uint8)
    downloaded = inception_features(load_inception(dims=64), probe)
    assert hub.urls == [pfid_inception.FID_WEIGHTS_URL]
    assert resolve_inception_weights() == offline / "hub" / "checkpoints" / WEIGHTS_FILENAME
    assert len(hub.urls) == 1  # the second lookup finds the cached file
    np.testing.assert_array_equal(downloaded, inception_features(load_inception(weights, dims=64), probe))


def test_failed_download_explains_how_to_provide_weights(offline: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(OFFLINE_ENV, "0")
    hub = FakeHub(error=URLError("no route to host"))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", hub)
    with pytest.raises(InceptionWeightsError) as err:
        resolve_inception_weights()
    message = str(err.value)
    assert "downloading" in message and "no route to host" in message and pfid_inception.FID_WEIGHTS_URL in message
    assert WEIGHTS_ENV in message and "--inception-weights" in message
    assert hub.urls == [pfid_inception.FID_WEIGHTS_URL]
    assert not (offline / "hub" / "checkpoints" / WEIGHTS_FILENAME).exists()
