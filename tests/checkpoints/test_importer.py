"""`simreal checkpoints import`: key maps against the reference layouts, round trips, refusals, synthesis, init=.

The reference layouts below are written from the reference code (boschresearch/OASIS, sj-li/DP_GAN, NVlabs/SPADE:
module names, conv shapes, which convs are spectral-normalised or lack a bias), independently of simreal's maps,
at tiny widths; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

from simreal.checkpoints import synthesizers as maps
from simreal.checkpoints.importer import ImportOptions, import_checkpoints
from simreal.checkpoints.keymap import CheckpointImportError, KeyMap, normalize_reference
from simreal.cli.main import app
from simreal.data.store import FrameStore
from simreal.labels import get_class_set
from simreal.models.dpgan import DPGANDiscriminator, DPGANGenerator, DPGANGeneratorSpec
from simreal.models.oasis import OASISGenerator, OASISGeneratorSpec, UNetDiscriminator, UNetDiscriminatorSpec
from simreal.models.spade import (
    MultiscalePatchDiscriminator,
    PatchGANSpec,
    SPADEEncoder,
    SPADEGenerator,
    SPADEGeneratorSpec,
)
from simreal.models.spade_blocks import one_hot_labels
from simreal.sim.frames import render_labelled_frames
from simreal.synthesize import load_synthesizer
from simreal.training.config import compose_training_config
from simreal.training.errors import InitWeightsError, RunDirectoryError
from simreal.training.loop import train

CITYSCAPES = "cityscapes-labelids"
N = get_class_set(CITYSCAPES).num_classes  # 34: 35 label channels, as the published Cityscapes generators read
Z, CH, BASE_D = 4, 2, 2  # tiny noise, generator and discriminator widths
HIDDEN = 128  # SPADE's hidden width, hard-coded in all three references

Shapes = dict[str, tuple[int, ...]]


# ---------------------------------------------------------------- reference layouts (from the reference code)
def _plain(keys: Shapes, name: str, cin: int, cout: int, k: int, bias: bool = True) -> None:
    keys[f"{name}.weight"] = (cout, cin, k, k)
    if bias:
        keys[f"{name}.bias"] = (cout,)


def _sn(keys: Shapes, name: str, cin: int, cout: int, k: int, bias: bool = True) -> None:
    keys[f"{name}.weight_orig"] = (cout, cin, k, k)
    keys[f"{name}.weight_u"] = (cout,)
    keys[f"{name}.weight_v"] = (cin * k * k,)
    if bias:
        keys[f"{name}.bias"] = (cout,)


def _bn(keys: Shapes, name: str, channels: int, affine: bool) -> None:
    if affine:
        keys[f"{name}.weight"] = keys[f"{name}.bias"] = (channels,)
    keys[f"{name}.running_mean"] = keys[f"{name}.running_var"] = (channels,)
    keys[f"{name}.num_batches_tracked"] = ()


def _spade_resblock(keys: Shapes, name: str, fin: int, fout: int, cond: int | None, norm: str) -> None:
    """ResnetBlock_with_SPADE / SPADEResnetBlock; ``cond`` None = DP-GAN's SPADE without mlp_shared."""
    middle = min(fin, fout)
    _sn(keys, f"{name}.conv_0", fin, middle, 3)
    _sn(keys, f"{name}.conv_1", middle, fout, 3)
    norms = {"norm_0": fin, "norm_1": middle}
    if fin != fout:
        _sn(keys, f"{name}.conv_s", fin, fout, 1, bias=False)
        norms["norm_s"] = fin
    for spade, channels in norms.items():
        _bn(keys, f"{name}.{spade}.{norm}", channels, affine=False)
        if cond is not None:
            _plain(keys, f"{name}.{spade}.mlp_shared.0", cond, HIDDEN, 3)
        _plain(keys, f"{name}.{spade}.mlp_gamma", HIDDEN, channels, 3)
        _plain(keys, f"{name}.{spade}.mlp_beta", HIDDEN, channels, 3)


def reference_oasis_generator(semantic_nc: int, dpgan: bool = False) -> Shapes:
    keys: Shapes = {}
    channels = [16 * CH, 16 * CH, 16 * CH, 8 * CH, 4 * CH, 2 * CH, CH]
    cond = semantic_nc + Z
    _plain(keys, "fc", cond, 16 * CH, 3)
    for i in range(6):
        _spade_resblock(keys, f"body.{i}", channels[i], channels[i + 1], None if dpgan else cond, "first_norm")
    _plain(keys, "conv_img", CH, 3, 3)
    if dpgan:
        for level, (cin, cout) in enumerate([(cond, 32), (32, 64)] + [(64, 64)] * 5):
            _plain(keys, f"seg_pyrmid.{level}.0", cin, cout, 3)
            _bn(keys, f"seg_pyrmid.{level}.1", cout, affine=True)
    return keys


def _residual_block_d(keys: Shapes, name: str, fin: int, fout: int, conv1: int) -> None:
    _sn(keys, f"{name}.conv1.{conv1}", fin, fout, 3)
    _sn(keys, f"{name}.conv2.1", fout, fout, 3)
    if fin != fout:
        _sn(keys, f"{name}.conv_s", fin, fout, 1)


def reference_unet_discriminator(semantic_nc: int, dpgan: bool = False) -> Shapes:
    keys: Shapes = {}
    channels = [3] + [m * BASE_D for m in (2, 2, 4, 4, 8, 8)]
    for i in range(6):
        _residual_block_d(keys, f"body_down.{i}", channels[i], channels[i + 1], 0 if i == 0 else 1)
    _residual_block_d(keys, "body_up.0", channels[-1], channels[-2], 2)
    for i in range(1, 5):
        _residual_block_d(keys, f"body_up.{i}", 2 * channels[-1 - i], channels[-2 - i], 2)
    _residual_block_d(keys, "body_up.5", 2 * channels[1], BASE_D, 2)
    _plain(keys, "layer_up_last", BASE_D, semantic_nc + 1, 1)
    if dpgan:
        for head, width in enumerate((channels[4], channels[6])):
            _plain(keys, f"dis.{head}.0", width, 64, 3)
            for conv, norm in ((2, 3), (5, 6), (8, 9)):
                _plain(keys, f"dis.{head}.{conv}", 64, 64, 3)
                _bn(keys, f"dis.{head}.{norm}", 64, affine=True)
            _plain(keys, f"dis.{head}.11", 64, 1, 3)
    return keys


def reference_spade_generator(semantic_nc: int, most: bool = False, vae_cells: int = 0) -> Shapes:
    keys: Shapes = {}
    nf = CH * 2  # up_4 halves nf
    if vae_cells:
        keys["fc.weight"], keys["fc.bias"] = (16 * nf * vae_cells, Z), (16 * nf * vae_cells,)
    else:
        _plain(keys, "fc", semantic_nc, 16 * nf, 3)
    blocks = [("head_0", 16, 16), ("G_middle_0", 16, 16), ("G_middle_1", 16, 16), ("up_0", 16, 8)]
    blocks += [("up_1", 8, 4), ("up_2", 4, 2), ("up_3", 2, 1)]
    for name, fin, fout in blocks:
        _spade_resblock(keys, name, fin * nf, fout * nf, semantic_nc, "param_free_norm")
    if most:
        _spade_resblock(keys, "up_4", nf, nf // 2, semantic_nc, "param_free_norm")
    _plain(keys, "conv_img", nf // 2 if most else nf, 3, 3)
    return keys


def reference_spade_discriminator(input_nc: int, num_d: int = 2, n_layers: int = 4) -> Shapes:
    keys: Shapes = {}
    for d in range(num_d):
        nf = BASE_D
        _plain(keys, f"discriminator_{d}.model0.0", input_nc, nf, 4)
        for n in range(1, n_layers):
            previous, nf = nf, min(nf * 2, 512)
            _sn(keys, f"discriminator_{d}.model{n}.0.0", previous, nf, 4, bias=False)  # bias removed before IN
        _plain(keys, f"discriminator_{d}.model{n_layers}.0", nf, 1, 4)
    return keys


def reference_spade_encoder(ngf: int) -> Shapes:
    keys: Shapes = {}
    widths = [3] + [m * ngf for m in (1, 2, 4, 8, 8, 8)]
    for k in range(6):
        _sn(keys, f"layer{k + 1}.0", widths[k], widths[k + 1], 3, bias=False)
    for head in ("fc_mu", "fc_var"):
        keys[f"{head}.weight"], keys[f"{head}.bias"] = (Z, widths[-1] * 16), (Z,)
    return keys


# ---------------------------------------------------------------- the networks at tiny widths
def tiny_networks() -> dict[str, tuple[torch.nn.Module, KeyMap, Shapes]]:
    """name -> (simreal module, key map, reference layout)."""
    oasis = OASISGeneratorSpec(N, Z, CH, 6)
    dpgan = DPGANGeneratorSpec(N, Z, CH, 6, 64)
    unet = UNetDiscriminatorSpec(N, BASE_D)
    spade = SPADEGeneratorSpec(N, 2 * CH, "more")
    spade_most = SPADEGeneratorSpec(N, 2 * CH, "most")
    spade_vae = SPADEGeneratorSpec(N, 2 * CH, "more", True, Z, (128, 256))
    patchgan = PatchGANSpec(N, BASE_D, 2, 4)
    labels = N + 1
    return {
        "oasis G": (OASISGenerator(oasis), maps.oasis_generator_map(oasis), reference_oasis_generator(labels)),
        "oasis D": (UNetDiscriminator(unet), maps.unet_discriminator_map(unet), reference_unet_discriminator(labels)),
        "dpgan G": (DPGANGenerator(dpgan), maps.oasis_generator_map(dpgan), reference_oasis_generator(labels, True)),
        "dpgan D": (
            DPGANDiscriminator(unet),
            maps.unet_discriminator_map(unet, dpgan=True),
            reference_unet_discriminator(labels, dpgan=True),
        ),
        "spade G": (
            SPADEGenerator(spade),
            maps.spade_generator_map(spade, True),
            reference_spade_generator(labels + 1),
        ),
        "spade G most, no instances": (
            SPADEGenerator(spade_most),
            maps.spade_generator_map(spade_most, False),
            reference_spade_generator(labels, most=True),
        ),
        "spade G vae": (
            SPADEGenerator(spade_vae),
            maps.spade_generator_map(spade_vae, True),
            reference_spade_generator(labels + 1, vae_cells=2 * 4),
        ),
        "spade E": (SPADEEncoder(spade_vae), maps.spade_encoder_map(spade_vae), reference_spade_encoder(2 * CH)),
        "spade D": (
            MultiscalePatchDiscriminator(patchgan),
            maps.spade_discriminator_map(patchgan, True),
            reference_spade_discriminator(labels + 1 + 3),
        ),
    }


NETWORKS = tiny_networks()


@pytest.mark.parametrize("name", list(NETWORKS))
def test_key_map_gives_exactly_the_reference_layout(name: str) -> None:
    module, key_map, reference = NETWORKS[name]
    exported = key_map.to_reference(module.state_dict())
    assert sorted(set(exported) - set(reference)) == [] and sorted(set(reference) - set(exported)) == []
    assert {key: tuple(value.shape) for key, value in exported.items()} == reference


def _randomized(state: dict[str, torch.Tensor], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random values of the right kind everywhere, so a swapped or dropped tensor cannot go unnoticed."""
    generator = torch.Generator().manual_seed(seed)
    out = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked"):
            out[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            out[key] = torch.rand(value.shape, generator=generator) + 0.5
        elif key.endswith(("_u", "_v", "weight_u", "weight_v")):
            out[key] = F.normalize(torch.randn(value.shape, generator=generator), dim=0)
        else:
            out[key] = torch.randn(value.shape, generator=generator) * 0.2
    return out


def _outputs(module: torch.nn.Module, name: str) -> list[torch.Tensor]:
    torch.manual_seed(3)
    labels = torch.randint(0, N, (2, 64, 128))
    labels[:, :4] = 255
    segmap = one_hot_labels(labels, N)
    image = torch.rand(2, 3, 64, 128) * 2 - 1
    module.eval()
    with torch.no_grad():
        if name.startswith(("oasis G", "dpgan G")):
            return [module(segmap, torch.randn(2, Z))]
        large = one_hot_labels(labels.repeat(1, 2, 2), N)  # 128x256: 7 upsamplings ("most") or a VAE's size
        if name == "spade G vae":
            return [module(large, torch.randn(2, Z))]
        if name.startswith("spade G"):
            return [module(large if "most" in name else segmap)]
        if name == "spade E":
            return list(module(image))
        if name == "spade D":
            return [t for scale in module(segmap, image) for t in scale]
        out = module(image)
        return [out.logits, *getattr(out, "patch_scores", [])]


@pytest.mark.parametrize("name", list(NETWORKS))
def test_round_trip_reference_layout_to_simreal_gives_the_same_outputs(name: str) -> None:
    module, key_map, _ = NETWORKS[name]
    state = _randomized(module.state_dict())
    for entry in key_map.entries:  # tensors the reference lacks (a bias before InstanceNorm) are zeros there
        if entry.reference is None:
            state[entry.target].zero_()
    module.load_state_dict(state)
    reference = key_map.to_reference(module.state_dict())
    fresh = type(module)(module.spec) if hasattr(module, "spec") else None
    if fresh is None:  # the SPADE encoder keeps no spec
        fresh = SPADEEncoder(SPADEGeneratorSpec(N, 2 * CH, "more", True, Z, (128, 256)))
    fresh.load_state_dict(key_map.to_simreal(reference, fresh.state_dict()))
    for ours, theirs in zip(_outputs(fresh, name), _outputs(module, name), strict=True):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_instance_edge_channel_is_fed_zeros() -> None:
    """A reference SPADE G with an edge channel is a generator of one more input channel; with that channel zero
    (no instances) it paints what the imported generator paints."""
    with_edge = SPADEGenerator(SPADEGeneratorSpec(N + 1, 2 * CH, "more"))  # channel N + 1 plays the edge map
    with_edge.load_state_dict(_randomized(with_edge.state_dict(), seed=1))
    reference = maps.spade_generator_map(with_edge.spec, False).to_reference(with_edge.state_dict())
    spec = SPADEGeneratorSpec(N, 2 * CH, "more")
    imported = SPADEGenerator(spec)
    imported.load_state_dict(maps.spade_generator_map(spec, True).to_simreal(reference, imported.state_dict()))
    labels = torch.randint(0, N, (1, 64, 128))
    with torch.no_grad():
        expected = with_edge.eval()(one_hot_labels(labels, N + 1))  # class N, the edge, never lit
        torch.testing.assert_close(imported.eval()(one_hot_labels(labels, N)), expected, rtol=0, atol=0)


def test_oasis_reads_noise_before_labels() -> None:
    """The reference's first conv sees concat(noise, labels); simreal's sees concat(labels, noise)."""
    generator = OASISGenerator(OASISGeneratorSpec(N, Z, CH, 6))
    reference = maps.oasis_generator_map(generator.spec).to_reference(generator.state_dict())
    segmap = one_hot_labels(torch.randint(0, N, (1, 8, 8)), N)
    noise = torch.randn(1, Z, 1, 1).expand(1, Z, 8, 8)
    theirs = F.conv2d(torch.cat([noise, segmap], 1), reference["fc.weight"], reference["fc.bias"], padding=1)
    torch.testing.assert_close(generator.fc(torch.cat([segmap, noise], 1)), theirs)


# ---------------------------------------------------------------- files, refusals, normalisation
def write_reference_files(folder: Path, files: dict[str, dict[str, torch.Tensor]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, state in files.items():
        torch.save(state, folder / name)
    return folder


def oasis_files(folder: Path, prefix: str = "best", wrap: bool = False) -> tuple[Path, OASISGenerator]:
    module, key_map, _ = NETWORKS["oasis G"]
    ema = OASISGenerator(module.spec)
    ema.load_state_dict(_randomized(ema.state_dict(), seed=5))
    g_ref = key_map.to_reference(module.state_dict())
    ema_ref = key_map.to_reference(ema.state_dict())
    if wrap:  # saved from a DataParallel wrapper
        ema_ref = {f"module.{k}": v for k, v in ema_ref.items()}
    d_module, d_map, _ = NETWORKS["oasis D"]
    files = {
        f"{prefix}_G.pth": g_ref,
        f"{prefix}_EMA.pth": ema_ref,
        f"{prefix}_D.pth": d_map.to_reference(d_module.state_dict()),
    }
    return write_reference_files(folder, files), ema


def procedural_store(path: Path, frames: int = 2) -> Path:
    rgb, label = render_labelled_frames(frames, width=128, height=64, class_set=CITYSCAPES)
    store = FrameStore.create(path, height=64, width=128, class_set=CITYSCAPES)
    store.append(rgb, label, [{"frame": i} for i in range(frames)])
    return path


def test_imported_oasis_paints_procedural_labels_as_the_weights_it_came_from(tmp_path: Path) -> None:
    folder, ema = oasis_files(tmp_path / "oasis", wrap=True)
    result = import_checkpoints("oasis", folder, tmp_path / "run", ImportOptions(z_dim=Z))
    assert sorted(result.files) == ["D", "EMA", "G"] and (tmp_path / "run" / "config.yaml").is_file()
    synthesizer = load_synthesizer(tmp_path / "run")
    store = FrameStore.open(procedural_store(tmp_path / "town.zarr"))
    labels = torch.from_numpy(np.stack([store.label(i) for i in range(len(store))])).long()
    z = torch.randn(len(labels), Z)
    with torch.no_grad():
        expected = ema.eval()(one_hot_labels(labels, N), z)
    torch.testing.assert_close(synthesizer.paint(labels, z=z), expected.clamp(-1, 1), rtol=0, atol=0)
    runner = CliRunner()
    painted = runner.invoke(
        app, ["synthesize", str(tmp_path / "run"), "--labels", str(store.path), "--out", str(tmp_path / "out.zarr")]
    )
    assert painted.exit_code == 0, painted.output
    assert len(FrameStore.open(tmp_path / "out.zarr")) == 2


def _expect_refusal(tmp_path: Path, edit, *needles: str) -> None:  # type: ignore[no-untyped-def]
    folder, _ = oasis_files(tmp_path / "oasis")
    state = torch.load(folder / "best_EMA.pth")
    edit(state)
    torch.save(state, folder / "best_EMA.pth")
    with pytest.raises(CheckpointImportError) as caught:
        import_checkpoints("oasis", folder, tmp_path / "run", ImportOptions(z_dim=Z))
    message = str(caught.value)
    assert "best_EMA.pth" in message and "OASIS generator" in message
    for needle in needles:
        assert needle in message
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_refuses_a_missing_key(tmp_path: Path) -> None:
    _expect_refusal(
        tmp_path, lambda s: s.pop("body.2.norm_1.mlp_gamma.bias"), "missing keys: body.2.norm_1.mlp_gamma.bias"
    )


def test_refuses_an_unexpected_key(tmp_path: Path) -> None:
    def add(state: dict) -> None:
        state["body.9.conv_0.weight_orig"] = torch.zeros(1)

    _expect_refusal(tmp_path, add, "unexpected keys: body.9.conv_0.weight_orig")


def test_refuses_a_wrong_shape(tmp_path: Path) -> None:
    def widen(state: dict) -> None:
        state["conv_img.weight"] = torch.zeros(3, 7, 3, 3)

    _expect_refusal(tmp_path, widen, "wrong shapes: conv_img.weight (3, 7, 3, 3) (expected (3, 2, 3, 3))")


def test_refuses_weights_of_another_label_space(tmp_path: Path) -> None:
    folder, _ = oasis_files(tmp_path / "oasis")
    with pytest.raises(CheckpointImportError, match=r"reads 35 label channels .*'shared16' has 16 classes"):
        import_checkpoints("oasis", folder, tmp_path / "run", ImportOptions(class_set="shared16", z_dim=Z))


def test_the_oasis_run_folder_is_read_as_its_save_code_lays_it_out(tmp_path: Path) -> None:
    """OASIS (and DP-GAN) save to <checkpoints_dir>/<name>/models/<which>_{G,D,EMA}.pth beside latest_iter.txt."""
    run = tmp_path / "oasis_cityscapes"
    oasis_files(run / "models")
    (run / "latest_iter.txt").write_text("200000")
    result = import_checkpoints("oasis", run, tmp_path / "run", ImportOptions(z_dim=Z))
    assert {path.parent.name for path in result.files.values()} == {"models"}


def test_finds_the_files_of_one_saved_iteration(tmp_path: Path) -> None:
    folder, _ = oasis_files(tmp_path / "oasis", prefix="10000")
    oasis_files(folder, prefix="20000")
    with pytest.raises(CheckpointImportError, match=r"several saved iterations \(10000, 20000\): pass --which"):
        import_checkpoints("oasis", folder, tmp_path / "run", ImportOptions(z_dim=Z))
    result = import_checkpoints("oasis", folder / "20000_G.pth", tmp_path / "run", ImportOptions(z_dim=Z))
    assert {p.name for p in result.files.values()} == {"20000_G.pth", "20000_EMA.pth", "20000_D.pth"}
    with pytest.raises(CheckpointImportError, match="already holds a checkpoint"):
        import_checkpoints("oasis", folder, tmp_path / "run", ImportOptions(z_dim=Z, which="10000"))


def test_old_spectral_norm_checkpoints_get_the_v_pytorch_would_load() -> None:
    """PyTorch < 1.0 saved ``weight`` (W / sigma) and no ``weight_v``; PyTorch's loader solves v from them."""
    conv = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3))
    conv(torch.randn(1, 3, 8, 8))  # one power iteration
    state = conv.state_dict()
    old = {k: v.clone() for k, v in state.items() if k != "weight_v"}
    with torch.no_grad():
        old["weight"] = conv.weight.detach().clone()
    normalized = normalize_reference(old)
    assert "weight" not in normalized
    legacy = dict(old)
    legacy_state = type(state)(legacy)
    legacy_state._metadata = {"": {"version": 1}}  # no spectral_norm version: the pre-1.0 layout
    reloaded = torch.nn.utils.spectral_norm(torch.nn.Conv2d(3, 5, 3))
    reloaded.load_state_dict(legacy_state)
    torch.testing.assert_close(normalized["weight_v"], reloaded.weight_v)


# ---------------------------------------------------------------- the CLI and init=
def test_cli_imports_and_reports_the_notes(tmp_path: Path) -> None:
    spade, key_map, _ = NETWORKS["spade G"]
    d_module, d_map, _ = NETWORKS["spade D"]
    folder = write_reference_files(
        tmp_path / "spade",
        {
            "latest_net_G.pth": key_map.to_reference(spade.state_dict()),
            "latest_net_D.pth": d_map.to_reference(d_module.state_dict()),
        },
    )
    result = CliRunner().invoke(app, ["checkpoints", "import", "spade", str(folder), "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "latest_net_G.pth" in result.output and "instance-edge input channel is fed zeros" in result.output
    saved = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=True)
    assert saved["method_name"] == "spade" and saved["method"]["synthesizer"]["generator_spec"]["base_channels"] == 4
    refused = CliRunner().invoke(app, ["checkpoints", "import", "spade", str(tmp_path / "nowhere"), "--out", "x"])
    assert refused.exit_code == 1 and "does not exist" in refused.output


def test_training_starts_from_imported_weights_and_refuses_to_resume_them(tmp_path: Path) -> None:
    folder, ema = oasis_files(tmp_path / "oasis")
    import_checkpoints("oasis", folder, tmp_path / "imported", ImportOptions(z_dim=Z))
    store = procedural_store(tmp_path / "town.zarr", frames=4)
    base = [f"real={store}", "preset=tiny", "model.z_dim=4", "model.g_channels=2", "model.d_channels=2"]
    out = tmp_path / "finetune"
    result = train(compose_training_config("oasis", [*base, "steps=0", f"init={tmp_path / 'imported'}", f"out={out}"]))
    assert result.step == 0
    state = torch.load(out / "checkpoint.pt", weights_only=True)["method"]
    imported = torch.load(tmp_path / "imported" / "checkpoint.pt", weights_only=True)["method"]
    for key, value in imported["generator"].items():
        torch.testing.assert_close(state["generator"][key], value)
    for key in ("fc.weight", "body.0.conv_0.parametrizations.weight.original", "conv_img.bias"):
        torch.testing.assert_close(state["ema"]["module"][key], ema.state_dict()[key])
    assert state["opt_g"]["state"] == {}  # the optimizer starts fresh

    with pytest.raises(InitWeightsError, match=r"generator does not fit .*other shapes: fc.weight"):
        train(compose_training_config("oasis", [*base, "model.g_channels=4", f"init={tmp_path / 'imported'}"]))
    with pytest.raises(RunDirectoryError, match="no optimizer state to resume; start a new run from them with init="):
        train(compose_training_config("oasis", [*base, "steps=1", f"out={tmp_path / 'imported'}"]))


def test_lcsae_starts_from_an_sae_run_keeping_its_own_semantic_head(tmp_path: Path) -> None:
    from stores import make_procedural_store

    stores = [f"sim={make_procedural_store(tmp_path / 'sim', 'flat')}"]
    stores.append(f"real={make_procedural_store(tmp_path / 'real', 'textured')}")
    train(compose_training_config("sae", [*stores, "preset=tiny", "steps=1", f"out={tmp_path / 'sae'}"]))
    lcsae = [*stores, "preset=tiny", "loss.lambda_outer=0", "steps=0"]
    train(compose_training_config("lcsae", [*lcsae, f"init={tmp_path / 'sae'}", f"out={tmp_path / 'lc'}", "seed=9"]))
    source = torch.load(tmp_path / "sae" / "checkpoint.pt", weights_only=True)["method"]["networks"]
    started = torch.load(tmp_path / "lc" / "checkpoint.pt", weights_only=True)["method"]["networks"]
    for key, value in source.items():
        if not key.startswith("semantic_head."):
            torch.testing.assert_close(started[key], value, rtol=0, atol=0)
    head = "semantic_head.classify.conv.weight"  # never trained by sae (lambda_in = 0): lcsae keeps its own (seed 9)
    assert not torch.equal(started[head], source[head])

    with pytest.raises(InitWeightsError, match=r"init=.* is a 'oasis' run; lcsae starts from an lcsae or sae run"):
        folder, _ = oasis_files(tmp_path / "oasis")
        import_checkpoints("oasis", folder, tmp_path / "oasis-run", ImportOptions(z_dim=Z))
        train(compose_training_config("lcsae", [*lcsae, f"init={tmp_path / 'oasis-run'}", f"out={tmp_path / 'x'}"]))
    with pytest.raises(InitWeightsError, match="does not fit this run's"):
        train(
            compose_training_config(
                "lcsae", [*lcsae, "crop=[32,32]", f"init={tmp_path / 'sae'}", f"out={tmp_path / 'y'}"]
            )
        )


# ---------------------------------------------------------------- the swapping autoencoder
def _sae_config():  # type: ignore[no-untyped-def]
    """Tiny widths the reference's width rules can also produce (encoder 4·2^i, generator capacity 1/16)."""
    from simreal.models.sae import (
        DiscriminatorConfig,
        EncoderConfig,
        GeneratorConfig,
        PatchDiscriminatorConfig,
        SAEConfig,
        SemanticHeadConfig,
    )

    return SAEConfig(
        crop_size=32,
        frame_size=(32, 64),
        encoder=EncoderConfig(base_channels=4, texture_downsamplings=1, texture_dim=32),
        generator=GeneratorConfig(base_channels=8, max_channels=32),
        discriminator=DiscriminatorConfig(base_channels=8, max_channels=32),
        patch_discriminator=PatchDiscriminatorConfig(
            patch_size=16, base_channels=8, max_channels=32, classifier_widths=(64, 32)
        ),
        semantic_head=SemanticHeadConfig(n_classes=16),
    )


def _conv_layer(keys: Shapes, name: str, cin: int, cout: int, k: int, activate: bool = True, bias: bool = True) -> None:
    keys[f"{name}.Conv.weight"] = (cout, cin, k, k)
    if bias and activate:
        keys[f"{name}.Act.bias"] = (cout,)
    elif bias:
        keys[f"{name}.Conv.bias"] = (cout,)


def _res_block_ref(keys: Shapes, name: str, cin: int, cout: int, blur: int | None) -> None:
    _conv_layer(keys, f"{name}.conv1", cin, cin, 3)
    _conv_layer(keys, f"{name}.conv2", cin, cout, 3)
    _conv_layer(keys, f"{name}.skip", cin, cout, 1, activate=False, bias=False)
    if blur:
        keys[f"{name}.conv2.Blur.kernel"] = keys[f"{name}.skip.Blur.kernel"] = (blur, blur)


def _styled(keys: Shapes, name: str, cin: int, cout: int, k: int, style: int, up: bool = False) -> None:
    keys[f"{name}.conv.weight"] = (1, cout, cin, k, k)
    keys[f"{name}.conv.modulation.weight"], keys[f"{name}.conv.modulation.bias"] = (cin, style), (cin,)
    keys[f"{name}.noise.weight"] = (1,)
    keys[f"{name}.activate.bias"] = (cout,)
    if up:
        keys[f"{name}.conv.blur.kernel"] = (4, 4)


def reference_sae(cfg) -> dict[str, Shapes]:  # type: ignore[no-untyped-def]
    """E, G, D, DPatch of the reference (encoder.py, generator.py, discriminator.py, patch_discriminator.py)."""
    enc, gen = cfg.encoder, cfg.generator
    nc = [enc.base_channels * 2**i for i in range(7)]
    e: Shapes = {}
    _conv_layer(e, "FromRGB", 3, nc[0], 1)
    for i in range(4):
        _res_block_ref(e, f"DownToSpatialCode.ResBlockDownBy{2**i}", nc[i], nc[i + 1], 3)
    _conv_layer(e, "ToSpatialCode.0", nc[4], nc[4], 1)
    _conv_layer(e, "ToSpatialCode.1", nc[4], 8, 1, activate=False)
    _conv_layer(e, "DownToGlobalCode.ConvLayerDownBy16", nc[4], nc[5], 3)
    e["DownToGlobalCode.ConvLayerDownBy16.Blur.kernel"] = (1, 1)
    e["ToGlobalCode.0.weight"], e["ToGlobalCode.0.bias"] = (enc.texture_dim, nc[5]), (enc.texture_dim,)

    g: Shapes = {}
    style = enc.texture_dim
    for part in ("scale", "bias"):
        g[f"SpatialCodeModulation.{part}.weight"], g[f"SpatialCodeModulation.{part}.bias"] = (8, style), (8,)
    nf = [min(gen.max_channels, gen.base_channels * 2 ** (4 - j)) for j in range(5)]
    channels = 8
    for i in range(2):
        out = max(8, round((i + 1) / 2 * nf[0]))
        _styled(g, f"HeadResnetBlock{i}.conv1", channels, out, 3, style)
        _styled(g, f"HeadResnetBlock{i}.conv2", out, out, 3, style)
        if channels != out:
            _conv_layer(g, f"HeadResnetBlock{i}.skip", channels, out, 1, activate=False, bias=False)
        channels = out
    for j in range(4):
        out = nf[j + 1]
        _styled(g, f"UpsamplingResBlock{2 ** (4 + j)}.conv1", channels, out, 3, style, up=True)
        _styled(g, f"UpsamplingResBlock{2 ** (4 + j)}.conv2", out, out, 3, style)
        if channels != out:
            _conv_layer(g, f"UpsamplingResBlock{2 ** (4 + j)}.skip", channels, out, 1)
        channels = out
    g["ToRGB.conv.weight"] = (1, 3, channels, 1, 1)
    g["ToRGB.conv.modulation.weight"], g["ToRGB.conv.modulation.bias"] = (channels, style), (channels,)
    g["ToRGB.bias"], g["ToRGB.upsample.kernel"] = (1, 3, 1, 1), (4, 4)

    def widths(size: int, base: int, top: int) -> dict[int, int]:
        return {size >> k: min(top, base << k) for k in range(size.bit_length())}

    d: Shapes = {}
    dw = widths(cfg.crop_size, cfg.discriminator.base_channels, cfg.discriminator.max_channels)
    _conv_layer(d, "stylegan2_D.convs.0", 3, dw[32], 1)
    for i in range(5, 2, -1):  # log2(32) = 5: blocks "4", "5", "6"
        _res_block_ref(d, f"stylegan2_D.convs.{9 - i}", dw[2**i], dw[2 ** (i - 1)], 4)
    _conv_layer(d, "stylegan2_D.final_conv", dw[4], dw[4], 3)
    d["stylegan2_D.final_linear.0.weight"], d["stylegan2_D.final_linear.0.bias"] = (dw[4], dw[4] * 16), (dw[4],)
    d["stylegan2_D.final_linear.1.weight"], d["stylegan2_D.final_linear.1.bias"] = (1, dw[4]), (1,)

    p: Shapes = {}
    patch = cfg.patch_discriminator
    pw = widths(patch.patch_size, patch.base_channels, patch.max_channels)
    _conv_layer(p, "convs.0", 3, pw[16], 3)
    for i in range(4, 2, -1):  # log2(16) = 4: blocks "3", "4"
        _res_block_ref(p, f"convs.{7 - i}", pw[2**i], pw[2 ** (i - 1)], 4)
    _res_block_ref(p, "convs.5", pw[4], 2 * pw[4], None)
    _conv_layer(p, "convs.6", 2 * pw[4], pw[4], 3)
    dims = [2 * pw[4] * 4, *patch.classifier_widths, 1]
    for j, (din, dout) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        p[f"pairlinear.{j}.weight"], p[f"pairlinear.{j}.bias"] = (dout, din), (dout,)
    return {"E": e, "G": g, "D": d, "DPatch": p}


def _sae_networks():  # type: ignore[no-untyped-def]
    from simreal.checkpoints.sae import network_maps
    from simreal.models.sae import build_networks

    nets = build_networks(_sae_config())
    return nets, network_maps(nets)


@pytest.mark.parametrize("role", ["E", "G", "D", "DPatch"])
def test_sae_key_maps_give_exactly_the_reference_layout(role: str) -> None:
    nets, network_maps = _sae_networks()
    name, key_map = network_maps[role]
    exported = key_map.to_reference(getattr(nets, name).state_dict())
    assert {key: tuple(value.shape) for key, value in exported.items()} == reference_sae(nets.cfg)[role]


def test_sae_import_translates_as_the_weights_it_came_from(tmp_path: Path) -> None:
    nets, network_maps = _sae_networks()
    for name in ("encoder", "generator", "discriminator", "patch_discriminator"):
        module = getattr(nets, name)
        module.load_state_dict(_randomized(module.state_dict(), seed=2))
    files = {
        f"latest_net_{role}.pth": key_map.to_reference(getattr(nets, name).state_dict())
        for role, (name, key_map) in network_maps.items()
    }
    folder = write_reference_files(tmp_path / "sae", files)
    result = import_checkpoints("sae", folder, tmp_path / "run")
    assert "semantic_head start fresh" in " ".join(result.notes)

    from simreal.translate import checkpoint_method

    _, method, state = checkpoint_method(tmp_path / "run")
    from simreal.models.sae import SAEConfig, build_networks

    imported = build_networks(SAEConfig.from_dict(state["model_config"]))
    imported.load_state_dict(state["networks"])
    assert method == "sae"
    images = torch.rand(2, 3, 64, 128) * 2 - 1
    with torch.no_grad():
        for module in (imported, nets):
            module.eval()
        torch.manual_seed(0)
        ours = imported.translate(images, images.flip(0))
        torch.manual_seed(0)
        theirs = nets.translate(images, images.flip(0))
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
        crops = torch.rand(2, 3, 3, 16, 16)
        torch.testing.assert_close(imported.patch_discriminator(crops, crops), nets.patch_discriminator(crops, crops))
        square = images[..., :32, :32]
        torch.testing.assert_close(imported.discriminator(square), nets.discriminator(square))


def sae_release(folder: Path, nets, network_maps, iteration_k: int = 30) -> Path:  # type: ignore[no-untyped-def]
    """A run folder as the reference's ``BaseModel.save`` leaves it: the model's whole state dict (attributes E, G,
    D, Dpatch and the ``num_discriminator_iters`` buffer) in ``<N>k_checkpoint.pth``, ``latest_checkpoint.pth`` a
    symbolic link to it."""
    prefixes = {"E": "E.", "G": "G.", "D": "D.", "DPatch": "Dpatch."}
    whole = {"num_discriminator_iters": torch.tensor([iteration_k * 500])}
    for role, (name, key_map) in network_maps.items():
        for key, value in key_map.to_reference(getattr(nets, name).state_dict()).items():
            whole[prefixes[role] + key] = value
    folder.mkdir(parents=True)
    torch.save(whole, folder / f"{iteration_k}k_checkpoint.pth")
    (folder / "latest_checkpoint.pth").symlink_to(f"{iteration_k}k_checkpoint.pth")
    return folder


@pytest.mark.parametrize("given", ["folder", "latest file", "iteration file"])
def test_sae_imports_the_release_layout_as_the_reference_saves_it(tmp_path: Path, given: str) -> None:
    nets, network_maps = _sae_networks()
    for name in ("encoder", "generator", "discriminator", "patch_discriminator"):
        module = getattr(nets, name)
        module.load_state_dict(_randomized(module.state_dict(), seed=3))
    folder = sae_release(tmp_path / "church_pretrained", nets, network_maps)
    source = {"folder": folder, "latest file": folder / "latest_checkpoint.pth",
              "iteration file": folder / "30k_checkpoint.pth"}[given]  # fmt: skip
    result = import_checkpoints("sae", source, tmp_path / "run")
    assert "saved after 15000 discriminator iterations" in " ".join(result.notes)
    from simreal.models.sae import SAEConfig, build_networks
    from simreal.translate import checkpoint_method

    _, _, state = checkpoint_method(tmp_path / "run")
    imported = build_networks(SAEConfig.from_dict(state["model_config"]))
    imported.load_state_dict(state["networks"])
    for name in ("encoder", "generator", "discriminator", "patch_discriminator"):
        ours, theirs = getattr(imported, name).state_dict(), getattr(nets, name).state_dict()
        assert all(torch.equal(ours[key], theirs[key]) for key in theirs), name


def test_sae_release_errors_name_what_was_found(tmp_path: Path) -> None:
    nets, network_maps = _sae_networks()
    folder = sae_release(tmp_path / "run-dir", nets, network_maps)
    with pytest.raises(CheckpointImportError, match=r"has no 10k_checkpoint.pth; found: 30k, latest"):
        import_checkpoints("sae", folder, tmp_path / "run", ImportOptions(which="10k"))
    stray = torch.load(folder / "30k_checkpoint.pth", weights_only=True)
    torch.save({**stray, "C.net.weight": torch.zeros(1)}, tmp_path / "other_checkpoint.pth")
    with pytest.raises(CheckpointImportError, match=r"key 'C.net.weight' outside the SAE model"):
        import_checkpoints("sae", tmp_path / "other_checkpoint.pth", tmp_path / "run2")
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(CheckpointImportError, match=r"latest_checkpoint.pth as the reference saves them.*found: notes"):
        import_checkpoints("sae", tmp_path / "empty", tmp_path / "run3")


def test_sae_refuses_another_blur_kernel(tmp_path: Path) -> None:
    """A reference trained with --use_antialias false saves 1x1 kernels: simreal always blurs, so it refuses."""
    from simreal.checkpoints.sae import encoder_map

    cfg = _sae_config()
    nets, _ = _sae_networks()
    reference = encoder_map(cfg).to_reference(nets.encoder.state_dict())
    reference["DownToSpatialCode.ResBlockDownBy1.conv2.Blur.kernel"] = torch.ones(3, 3)
    with pytest.raises(CheckpointImportError, match=r"ResBlockDownBy1.conv2.Blur.kernel: another constant"):
        encoder_map(cfg).to_simreal(reference, nets.encoder.state_dict(), source="latest_net_E.pth")
