"""Key maps of the Swapping Autoencoder reference (taesungp/swapping-autoencoder-pytorch) and its import.

The reference saves ``<which>_net_E.pth`` (StyleGAN2ResnetEncoder), ``_net_G.pth`` (StyleGAN2ResnetGenerator),
``_net_D.pth`` (StyleGAN2Discriminator around rosinality's Discriminator) and ``_net_DPatch.pth``
(StyleGAN2PatchDiscriminator). Its layers are rosinality's StyleGAN2 ones: ``ConvLayer`` is a Sequential of
``Blur`` / ``RefPad``, ``Conv`` and ``Act``; modulated conv weights keep a leading axis of 1; every ``Blur`` and
``Upsample`` saves its kernel, a constant simreal builds into its layers (checked here: the reference's antialiasing
must be on, its default). The LC-SAE semantic head has no reference counterpart: it starts fresh.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from simreal.checkpoints.keymap import (
    CheckpointImportError,
    Entry,
    KeyMap,
    LeadingAxis,
    constant,
    count_indexed,
    entry,
    stored_shape,
)

if TYPE_CHECKING:
    from simreal.checkpoints.importer import ImportOptions
    from simreal.labels import LabelTable
    from simreal.models.sae import SAEConfig, SAENetworks

ENCODER_BLUR = (1, 2, 1)
STYLEGAN_BLUR = (1, 3, 3, 1)


def blur_kernel(taps: tuple[int, ...], gain: float = 1.0) -> torch.Tensor:
    """The 2-D kernel rosinality's ``make_kernel`` saves: outer product of the taps, sum 1, times ``gain``."""
    k = torch.tensor(taps, dtype=torch.float32)
    kernel = k[None, :] * k[:, None]
    return kernel / kernel.sum() * gain


def _conv_layer(reference: str, target: str, activate: bool = True, bias: bool = True) -> list[Entry]:
    """rosinality's ConvLayer: the bias sits in ``Act`` (FusedLeakyReLU) when activated, else in ``Conv``."""
    entries = [entry(f"{reference}.Conv.weight", f"{target}.conv.weight")]
    if bias and activate:
        entries.append(entry(f"{reference}.Act.bias", f"{target}.act.bias"))
    elif bias:
        entries.append(entry(f"{reference}.Conv.bias", f"{target}.conv.bias"))
    return entries


def _linear(reference: str, target: str) -> list[Entry]:
    return [entry(f"{reference}.weight", f"{target}.weight"), entry(f"{reference}.bias", f"{target}.bias")]


def _res_block(reference: str, target: str, blur: tuple[int, ...] | None) -> list[Entry]:
    """ResBlock (conv1, conv2 [+ downsample], 1x1 skip); ``blur`` None = no downsampling."""
    entries = _conv_layer(f"{reference}.conv1", f"{target}.conv1")
    entries += _conv_layer(f"{reference}.conv2", f"{target}.conv2")
    entries += _conv_layer(f"{reference}.skip", f"{target}.skip", activate=False, bias=False)
    if blur is not None:
        entries += [constant(f"{reference}.{part}.Blur.kernel", blur_kernel(blur)) for part in ("conv2", "skip")]
    return entries


def _styled_conv(reference: str, target: str, upsample: bool = False) -> list[Entry]:
    entries = [
        entry(f"{reference}.conv.weight", f"{target}.conv.weight", LeadingAxis()),
        *_linear(f"{reference}.conv.modulation", f"{target}.conv.modulation"),
        entry(f"{reference}.noise.weight", f"{target}.noise.weight"),
        entry(f"{reference}.activate.bias", f"{target}.act.bias"),
    ]
    if upsample:
        entries.append(constant(f"{reference}.conv.blur.kernel", blur_kernel(STYLEGAN_BLUR, 4.0)))
    return entries


def _block_names(size: int, last_numbered: int) -> list[str]:
    """rosinality's down-block names: ``str(last_numbered + 1 - log2 side)``, or ``"SxS"`` at large sides."""
    log_size = size.bit_length() - 1
    names = []
    for i in range(log_size, 2, -1):
        names.append(str(last_numbered + 1 - i) if i <= last_numbered else f"{2**i}x{2**i}")
    return names


def encoder_map(cfg: SAEConfig) -> KeyMap:
    enc = cfg.encoder
    entries: list[Entry | list[Entry]] = [_conv_layer("FromRGB", "from_rgb")]
    for i in range(enc.structure_downsamplings):
        entries.append(_res_block(f"DownToSpatialCode.ResBlockDownBy{2**i}", f"down.{i}", ENCODER_BLUR))
    entries.append(_conv_layer("ToSpatialCode.0", "to_structure.0"))
    entries.append(_conv_layer("ToSpatialCode.1", "to_structure.1", activate=False))
    for i in range(enc.texture_downsamplings):
        name = f"DownToGlobalCode.ConvLayerDownBy{2 ** (enc.structure_downsamplings + i)}"
        entries.append(_conv_layer(name, f"to_texture_features.{i}"))
        entries.append(constant(f"{name}.Blur.kernel", blur_kernel((1,))))  # no blur: the identity kernel
    entries.append(_linear("ToGlobalCode.0", "to_texture"))
    return KeyMap.of("SAE encoder", entries)


def generator_map(cfg: SAEConfig, generator: nn.Module) -> KeyMap:
    entries: list[Entry | list[Entry]] = [
        _linear("SpatialCodeModulation.scale", "modulation_scale"),
        _linear("SpatialCodeModulation.bias", "modulation_bias"),
    ]
    heads = cfg.generator.head_blocks
    for i, block in enumerate(generator.blocks):  # type: ignore[union-attr]
        up = i >= heads
        reference = f"UpsamplingResBlock{2 ** (4 + i - heads)}" if up else f"HeadResnetBlock{i}"
        entries.append(_styled_conv(f"{reference}.conv1", f"blocks.{i}.conv1", upsample=up))
        entries.append(_styled_conv(f"{reference}.conv2", f"blocks.{i}.conv2"))
        if block.skip is not None:  # both sides have one exactly when the width changes
            entries.append(_conv_layer(f"{reference}.skip", f"blocks.{i}.skip", activate=up, bias=up))
    entries += [
        entry("ToRGB.conv.weight", "to_rgb.conv.weight", LeadingAxis()),
        *_linear("ToRGB.conv.modulation", "to_rgb.conv.modulation"),
        entry("ToRGB.bias", "to_rgb.bias"),
        constant("ToRGB.upsample.kernel", blur_kernel(STYLEGAN_BLUR, 4.0)),  # built, never used by the SAE
    ]
    return KeyMap.of("SAE generator", entries)


def discriminator_map(cfg: SAEConfig) -> KeyMap:
    prefix = "stylegan2_D."
    entries: list[Entry | list[Entry]] = [_conv_layer(f"{prefix}convs.0", "from_rgb")]
    for k, name in enumerate(_block_names(cfg.crop_size, 8)):
        entries.append(_res_block(f"{prefix}convs.{name}", f"blocks.{k}", STYLEGAN_BLUR))
    entries.append(_conv_layer(f"{prefix}final_conv", "final_conv"))
    entries += [_linear(f"{prefix}final_linear.{j}", f"final_linear.{j}") for j in range(2)]
    return KeyMap.of("SAE image discriminator", entries)


def patch_discriminator_map(cfg: SAEConfig) -> KeyMap:
    patch = cfg.patch_discriminator
    entries: list[Entry | list[Entry]] = [_conv_layer("convs.0", "features.0")]
    names = _block_names(patch.patch_size, 6)
    for k, name in enumerate(names):
        entries.append(_res_block(f"convs.{name}", f"features.{k + 1}", STYLEGAN_BLUR))
    entries.append(_res_block("convs.5", f"features.{len(names) + 1}", None))
    entries.append(_conv_layer("convs.6", f"features.{len(names) + 2}"))
    entries += [_linear(f"pairlinear.{j}", f"classifier.{j}") for j in range(len(patch.classifier_widths) + 1)]
    return KeyMap.of("SAE patch discriminator", entries)


# ---------------------------------------------------------------- settings from shapes
def infer_config(
    states: dict[str, dict[str, torch.Tensor]], files: dict[str, Path], num_classes: int, crop_size: int
) -> SAEConfig:
    from simreal.models.sae import (
        DiscriminatorConfig,
        EncoderConfig,
        GeneratorConfig,
        PatchDiscriminatorConfig,
        SAEConfig,
        SemanticHeadConfig,
    )

    e, g = states["E"], states["G"]
    n_sp = sum(1 for k in e if k.startswith("DownToSpatialCode.") and k.endswith(".conv1.Conv.weight"))
    n_gl = sum(1 for k in e if k.startswith("DownToGlobalCode.") and k.endswith(".Conv.weight"))
    texture_in = stored_shape(e, "ToGlobalCode.0.weight", files["E"])
    encoder = EncoderConfig(
        base_channels=stored_shape(e, "FromRGB.Conv.weight", files["E"])[0],
        max_channels=texture_in[1],
        structure_downsamplings=n_sp,
        texture_downsamplings=n_gl,
        structure_channels=stored_shape(e, "ToSpatialCode.1.Conv.weight", files["E"])[0],
        texture_dim=texture_in[0],
    )
    heads = count_indexed(g, "HeadResnetBlock{}.")
    generator = GeneratorConfig(
        base_channels=stored_shape(g, "ToRGB.conv.weight", files["G"])[2],
        max_channels=stored_shape(g, f"HeadResnetBlock{heads - 1}.conv2.conv.weight", files["G"])[1],
        head_blocks=heads,
    )
    discriminator = DiscriminatorConfig()
    if "D" in states:
        d = states["D"]
        blocks = sum(1 for k in d if k.startswith("stylegan2_D.convs.") and k.endswith(".conv1.Conv.weight"))
        crop_size = 2 ** (blocks + 2)
        discriminator = DiscriminatorConfig(
            base_channels=stored_shape(d, "stylegan2_D.convs.0.Conv.weight", files["D"])[0],
            max_channels=stored_shape(d, "stylegan2_D.final_conv.Conv.weight", files["D"])[0],
        )
    patch = PatchDiscriminatorConfig()
    if "DPatch" in states:
        p = states["DPatch"]
        down = sum(1 for k in p if k.endswith(".conv1.Conv.weight") and not k.startswith("convs.5."))
        layers = count_indexed(p, "pairlinear.{}.")
        patch = PatchDiscriminatorConfig(
            patch_size=2 ** (down + 2),
            base_channels=stored_shape(p, "convs.0.Conv.weight", files["DPatch"])[0],
            max_channels=stored_shape(p, "convs.6.Conv.weight", files["DPatch"])[0],
            classifier_widths=tuple(
                stored_shape(p, f"pairlinear.{j}.weight", files["DPatch"])[0] for j in range(layers - 1)
            ),
        )
    return SAEConfig(
        crop_size=crop_size,
        encoder=encoder,
        generator=generator,
        discriminator=discriminator,
        patch_discriminator=patch,
        semantic_head=SemanticHeadConfig(n_classes=num_classes),
    )


def network_maps(nets: SAENetworks) -> dict[str, tuple[str, KeyMap]]:
    """Reference file role -> (simreal network name, key map)."""
    cfg = nets.cfg
    return {
        "E": ("encoder", encoder_map(cfg)),
        "G": ("generator", generator_map(cfg, nets.generator)),
        "D": ("discriminator", discriminator_map(cfg)),
        "DPatch": ("patch_discriminator", patch_discriminator_map(cfg)),
    }


# Attribute prefixes of the reference's SwappingAutoencoderModel in its whole-model state dict -> file roles.
RELEASE_PREFIXES = {"E.": "E", "G.": "G", "D.": "D", "Dpatch.": "DPatch"}
ITERATION_COUNTER = "num_discriminator_iters"


def split_release(state: dict[str, torch.Tensor], path: Path) -> tuple[dict[str, dict[str, torch.Tensor]], list[str]]:
    """The per-network states of a whole-model release file (keys ``E.``, ``G.``, ``D.``, ``Dpatch.``), and a note
    with its discriminator iteration count; any other key is refused with its name."""
    states: dict[str, dict[str, torch.Tensor]] = {}
    notes = []
    for key, value in state.items():
        if key == ITERATION_COUNTER:
            notes.append(f"{path.name}: saved after {int(value.reshape(-1)[0])} discriminator iterations")
            continue
        prefix = next((p for p in RELEASE_PREFIXES if key.startswith(p)), None)
        if prefix is None:
            known = ", ".join([*RELEASE_PREFIXES, ITERATION_COUNTER])
            raise CheckpointImportError(f"{path} has a key {key!r} outside the SAE model ({known})")
        states.setdefault(RELEASE_PREFIXES[prefix], {})[key.removeprefix(prefix)] = value
    return states, notes


def import_sae(
    files: dict[str, Path], class_set: LabelTable, options: ImportOptions
) -> tuple[dict, list[str], list[str], list[str]]:
    """(method state of an ``sae`` run, config overrides, notes, networks left fresh)."""
    from simreal.checkpoints.importer import RELEASE, load_reference, map_into
    from simreal.models.sae import SAEConfig, build_networks

    if RELEASE in files:
        release = files[RELEASE].resolve()  # latest_checkpoint.pth links to the iteration's file
        states, notes = split_release(load_reference(release), release)
        files = dict.fromkeys(states, release)
    else:
        states, notes = {role: load_reference(path) for role, path in files.items()}, []
    missing = [role for role in ("E", "G") if role not in states]
    if missing:
        raise CheckpointImportError(
            f"the SAE encoder and generator are needed; no {' or '.join(missing)} weights in "
            f"{', '.join(sorted({str(path) for path in files.values()})) or 'the files found'}"
        )
    cfg = infer_config(states, files, max(class_set.ids) + 1, options.crop_size)
    nets = build_networks(cfg)
    fresh = ["semantic_head"]
    for role, (name, key_map) in network_maps(nets).items():
        if role in states:
            map_into(getattr(nets, name), key_map, states[role], files[role])
        else:
            fresh.append(name)
    notes.append(f"{', '.join(fresh)} start fresh: the reference files hold no weights for them")
    full = SAEConfig.preset("full", crop_size=cfg.crop_size, semantic_head=cfg.semantic_head)
    if cfg != full:
        notes.append("the networks differ from model.preset=full: init= needs a run configured like them")
    state = {"model_config": asdict(cfg), "networks": nets.state_dict()}
    return state, [f"crop=[{cfg.crop_size},{cfg.crop_size}]"], notes, fresh
