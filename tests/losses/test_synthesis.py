"""Synthesis losses on crafted batches with hand-computed values; BatchNorm re-estimation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from simreal.losses.synthesis import (
    VGGPerceptualLoss,
    VGGWeightsUnavailable,
    class_balance_map,
    feature_alignment_loss,
    hinge_d_loss,
    hinge_g_loss,
    labelmix_loss,
    labelmix_mask,
    load_vgg19_features,
    n_plus_one_loss,
)
from simreal.models.spade_blocks import reestimate_batch_norm

# one image, 2 x 3 pixels: class 0 twice, class 1 once, class 2 twice, one don't-care
LABELS = torch.tensor([[[0, 0, 1], [255, 2, 2]]])


def test_class_balance_weights_by_hand() -> None:
    # 6 pixels, K = 3 classes present: w_c = 6 / (3 * count_c) -> w0 = 1, w1 = 2, w2 = 1; don't-care 0
    expected = torch.tensor([[[1.0, 1.0, 2.0], [0.0, 1.0, 1.0]]])
    assert torch.allclose(class_balance_map(LABELS, num_classes=3), expected)
    # a class absent from the batch changes K: two classes, 4 pixels each of 8 -> all 1
    two = torch.tensor([[[0, 0, 0, 0], [2, 2, 2, 2]]])
    assert torch.allclose(class_balance_map(two, num_classes=3), torch.ones(1, 2, 4))
    assert class_balance_map(torch.full((1, 2, 2), 255), 3).sum() == 0


def test_n_plus_one_loss_by_hand() -> None:
    logits = torch.zeros(1, 4, 2, 3)  # N + 1 = 4 channels, uniform prediction: CE = log 4 per pixel
    real = n_plus_one_loss(logits, LABELS, target_is_real=True)
    assert math.isclose(float(real), math.log(4) * (1 + 1 + 2 + 0 + 1 + 1) / 6, rel_tol=1e-6)
    assert math.isclose(float(n_plus_one_loss(logits, LABELS, target_is_real=False)), math.log(4), rel_tol=1e-6)
    # confident and right about the "fake" channel: the fake loss vanishes, the real loss grows
    logits[:, 0] = 20.0
    assert float(n_plus_one_loss(logits, LABELS, target_is_real=False)) < 1e-6
    assert float(n_plus_one_loss(logits, LABELS, target_is_real=True)) > 10
    # the real targets are class + 1: pixel (0, 2) is class 1 -> channel 2
    logits = torch.zeros(1, 4, 2, 3)
    logits[0, 2, 0, 2] = 5.0
    unbalanced = n_plus_one_loss(logits, LABELS, target_is_real=True, balance=False)
    ce_right = math.log(3 + math.exp(5)) - 5
    assert math.isclose(float(unbalanced), (4 * math.log(4) + ce_right) / 6, rel_tol=1e-6)


def test_labelmix_mask_gives_each_class_one_random_bit() -> None:
    labels = torch.tensor([[[0, 0, 1, 1], [2, 2, 255, 255]]]).repeat(2, 1, 1)
    combos = set()
    for seed in range(40):
        mask = labelmix_mask(labels, torch.Generator().manual_seed(seed))
        assert mask.shape == (2, 1, 2, 4) and set(mask.unique().tolist()) <= {0.0, 1.0}
        per_class = []
        for value in (0, 1, 2, 255):
            region = mask[:, 0][labels == value]
            assert region.min() == region.max()  # constant over the class, across the batch
            per_class.append(int(region[0]))
        combos.add(tuple(per_class))
    assert len(combos) > 8  # independent bits per class (16 combinations possible)


def test_labelmix_loss_by_hand() -> None:
    mask = torch.tensor([[[[1.0, 0.0]]]])
    d_real = torch.tensor([[[[2.0, 4.0]]]])
    d_fake = torch.tensor([[[[-1.0, -3.0]]]])
    d_mixed = torch.tensor([[[[1.0, 0.0]]]])
    # target = [2, -3]; squared errors (1 - 2)^2 = 1 and (0 + 3)^2 = 9 -> mean 5
    assert float(labelmix_loss(mask, d_mixed, d_real, d_fake)) == pytest.approx(5.0)


def test_hinge_and_alignment_by_hand() -> None:
    real, fake = [torch.tensor([0.5, 2.0])], [torch.tensor([-2.0, 0.0])]
    # real: relu(1 - 0.5) = 0.5, relu(1 - 2) = 0 -> 0.25; fake: relu(1 - 2) = 0, relu(1 + 0) = 1 -> 0.5
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.75)
    assert float(hinge_g_loss([torch.tensor([1.0, 3.0]), torch.tensor([-1.0])])) == pytest.approx((-2.0 + 1.0) / 2)
    fake_features = [torch.ones(1, 2, 2, 2), torch.zeros(1, 1, 2, 2)]
    real_features = [torch.zeros(1, 2, 2, 2), torch.full((1, 1, 2, 2), 2.0)]
    assert float(feature_alignment_loss(fake_features, real_features)) == pytest.approx(1.0 + 4.0)


def test_batch_norm_reestimation_is_the_plain_average() -> None:
    net = nn.Sequential(nn.Conv2d(1, 1, 1, bias=False), nn.BatchNorm2d(1, affine=False))
    nn.init.ones_(net[0].weight)
    net.eval()
    batches = [(torch.full((2, 1, 2, 2), 1.0),), (torch.full((2, 1, 2, 2), 3.0),), (torch.full((2, 1, 2, 2), 8.0),)]
    reestimate_batch_norm(net, batches)
    assert net[1].running_mean.item() == pytest.approx(4.0)  # mean of 1, 3, 8; not a momentum-weighted mix
    assert net[1].momentum == 0.1 and not net.training and not net[0].training


def test_missing_vgg_weights_are_an_error(tmp_path) -> None:
    with pytest.raises(VGGWeightsUnavailable, match="does not exist"):
        load_vgg19_features(str(tmp_path / "missing.pth"))
    with pytest.raises(VGGWeightsUnavailable, match="no VGG19 weights"):
        load_vgg19_features(None)


def test_vgg_loss_from_a_local_weights_file(tmp_path) -> None:
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["E"])  # VGG19's feature layers, random weights stand in for ImageNet ones
    path = tmp_path / "vgg19.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    loss = VGGPerceptualLoss(load_vgg19_features(str(path)))
    loss.train()
    assert not loss.training  # a fixed feature extractor
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    fake = (real + 0.3 * torch.randn_like(real)).clamp(-1, 1).requires_grad_(True)
    assert float(loss(real, real)) == 0.0
    value = loss(fake, real)
    value.backward()
    assert float(value.detach()) > 0 and fake.grad is not None and fake.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.parameters())


def test_vgg_sees_the_images_in_minus_one_to_one_as_the_reference_feeds_them() -> None:
    """NVlabs/SPADE's VGGLoss passes the generator's tanh output straight to VGG19: no ImageNet mean/std."""
    from torchvision.models.vgg import cfgs, make_layers

    torch.manual_seed(0)
    features = make_layers(cfgs["E"])
    loss = VGGPerceptualLoss(features)
    real = torch.rand(1, 3, 32, 32) * 2 - 1
    fake = torch.rand(1, 3, 32, 32) * 2 - 1
    x, y, expected = fake, real, 0.0
    slices = ((0, 2), (2, 7), (7, 12), (12, 21), (21, 30))  # relu1_1 .. relu5_1
    for weight, (first, last) in zip((1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0), slices, strict=True):
        for layer in list(features)[first:last]:
            x, y = layer(x), layer(y)
        expected += weight * float((x - y).abs().mean())
    assert float(loss(fake, real)) == pytest.approx(expected, rel=1e-5)
