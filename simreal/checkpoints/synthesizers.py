"""Key maps of the label-to-image references: OASIS (boschresearch/OASIS), DP-GAN (sj-li/DP_GAN), SPADE
(NVlabs/SPADE), and reading a network's settings from the shapes of its reference weights.

Layout differences the maps bridge (see ``keymap``):

- OASIS / DP-GAN put the noise channels *before* the label channels (simreal: after) in the first conv, in every
  SPADE's shared conv and in DP-GAN's first pyramid conv.
- Their U-Net discriminators predict N+2 logits for N+1 label channels: fake, then one per label channel including
  channel 0, the don't-care class no loss ever targets. simreal's has no logit for don't-care: it is dropped.
- SPADE's Cityscapes networks read an instance-edge channel after the labels. simreal has no instances and would
  feed zeros there, which a conv turns into nothing: the weights reading that channel are dropped.
- SPADE removed the bias of every conv followed by InstanceNorm (the norm cancels it); simreal's gets zeros.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from simreal.checkpoints.keymap import (
    CheckpointImportError,
    DropChannel,
    Entry,
    KeyMap,
    NoiseFirst,
    Transform,
    batch_norm,
    conv,
    count_indexed,
    sn_conv,
    stored_shape,
)
from simreal.models.dpgan import PATCH_HEAD_BLOCKS, DPGANGeneratorSpec
from simreal.models.oasis import D_WIDTH_MULTIPLIERS, OASISGeneratorSpec, UNetDiscriminatorSpec
from simreal.models.spade import ENCODER_WIDTHS, UPSAMPLINGS, PatchGANSpec, SPADEGeneratorSpec
from simreal.models.spade_blocks import generator_channels

SPADE_BLOCKS = ("head_0", "G_middle_0", "G_middle_1", "up_0", "up_1", "up_2", "up_3", "up_4")
PATCH_HEAD_CONVS = (0, 2, 5, 8, 11)  # indices in the reference's (and simreal's) patch-head Sequential
PATCH_HEAD_NORMS = (3, 6, 9)


# ---------------------------------------------------------------- OASIS / DP-GAN generators
def _spade_norm(reference: str, target: str, shared: Transform | None, reference_norm: str) -> list[Entry]:
    entries = batch_norm(f"{reference}.{reference_norm}", f"{target}.norm", affine=False)
    if shared is not None:
        entries += conv(f"{reference}.mlp_shared.0", f"{target}.shared.0", shared)
    return entries + conv(f"{reference}.mlp_gamma", f"{target}.gamma") + conv(f"{reference}.mlp_beta", f"{target}.beta")


def _spade_block(
    block: str, target: str, fin: int, fout: int, shared: Transform | None, reference_norm: str
) -> list[Entry]:
    """A SPADE residual block; the reference and simreal name its parts alike apart from the SPADE internals."""
    entries = sn_conv(f"{block}.conv_0", f"{target}.conv_0") + sn_conv(f"{block}.conv_1", f"{target}.conv_1")
    norms = ["norm_0", "norm_1"]
    if fin != fout:
        entries += sn_conv(f"{block}.conv_s", f"{target}.conv_s", bias="none")
        norms.append("norm_s")
    for norm in norms:
        entries += _spade_norm(f"{block}.{norm}", f"{target}.{norm}", shared, reference_norm)
    return entries


def oasis_generator_map(spec: OASISGeneratorSpec | DPGANGeneratorSpec) -> KeyMap:
    """OASIS_Generator or DP_GAN_Generator (``*_G.pth`` / ``*_EMA.pth``) -> OASISGenerator / DPGANGenerator."""
    dpgan = isinstance(spec, DPGANGeneratorSpec)
    noise_first = NoiseFirst(spec.z_dim)
    channels = generator_channels(spec.base_channels, spec.num_blocks)
    entries: list[Entry | list[Entry]] = [conv("fc", transform=noise_first)]
    for i, (fin, fout) in enumerate(zip(channels[:-1], channels[1:], strict=True)):
        shared = None if dpgan else noise_first  # DP-GAN's SPADE reads the pyramid directly: no shared conv
        entries.append(_spade_block(f"body.{i}", f"body.{i}", fin, fout, shared, "first_norm"))
    entries.append(conv("conv_img"))
    if dpgan:
        for level in range(spec.num_blocks + 1):
            first = noise_first if level == 0 else None
            entries.append(conv(f"seg_pyrmid.{level}.0", f"pyramid.{level}.0", first))
            entries.append(batch_norm(f"seg_pyrmid.{level}.1", f"pyramid.{level}.1"))
    return KeyMap.of("DP-GAN generator" if dpgan else "OASIS generator", entries)


# ---------------------------------------------------------------- OASIS / DP-GAN discriminators
def _unet_block(reference: str, target: str, fin: int, fout: int, conv1_index: int) -> list[Entry]:
    entries = sn_conv(f"{reference}.conv1.{conv1_index}", f"{target}.conv1")
    entries += sn_conv(f"{reference}.conv2.1", f"{target}.conv2")
    if fin != fout:
        entries += sn_conv(f"{reference}.conv_s", f"{target}.conv_s")
    return entries


def unet_discriminator_map(spec: UNetDiscriminatorSpec, dpgan: bool = False) -> KeyMap:
    """OASIS_Discriminator / DP_GAN_Discriminator (``*_D.pth``) -> UNetDiscriminator / DPGANDiscriminator."""
    prefix = "unet." if dpgan else ""
    widths = [3] + [m * spec.base_channels for m in D_WIDTH_MULTIPLIERS]
    depth = len(D_WIDTH_MULTIPLIERS)
    entries: list[Entry | list[Entry]] = []
    for i in range(depth):
        # conv1 is Sequential(conv) in the first block, Sequential(LeakyReLU, conv) in the others
        entries.append(_unet_block(f"body_down.{i}", f"{prefix}down.{i}", widths[i], widths[i + 1], 0 if i == 0 else 1))
    ups = [(widths[-1], widths[-2])]
    ups += [(2 * widths[-1 - i], widths[-2 - i]) for i in range(1, depth - 1)]
    ups += [(2 * widths[1], spec.base_channels)]
    for i, (fin, fout) in enumerate(ups):  # conv1 is Sequential(LeakyReLU, Upsample, conv)
        entries.append(_unet_block(f"body_up.{i}", f"{prefix}up.{i}", fin, fout, 2))
    entries.append(conv("layer_up_last", f"{prefix}classifier", DropChannel(0, 1)))  # the don't-care logit
    if dpgan:
        for head in range(len(PATCH_HEAD_BLOCKS)):
            entries += [conv(f"dis.{head}.{k}", f"patch_heads.{head}.net.{k}") for k in PATCH_HEAD_CONVS]
            entries += [batch_norm(f"dis.{head}.{k}", f"patch_heads.{head}.net.{k}") for k in PATCH_HEAD_NORMS]
    return KeyMap.of("DP-GAN discriminator" if dpgan else "OASIS discriminator", entries)


# ---------------------------------------------------------------- SPADE
def spade_generator_map(spec: SPADEGeneratorSpec, instance_channel: bool) -> KeyMap:
    """SPADEGenerator (``*_net_G.pth``) -> simreal SPADEGenerator; drops the instance-edge input channel."""
    labels = DropChannel(1, spec.num_classes + 1) if instance_channel else Transform()
    nf = spec.base_channels
    widths = [16 * nf] * 4 + [8 * nf, 4 * nf, 2 * nf, nf] + ([nf // 2] if spec.num_upsampling == "most" else [])
    entries: list[Entry | list[Entry]] = [conv("fc") if spec.use_vae else conv("fc", transform=labels)]
    for i, (fin, fout) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        entries.append(_spade_block(SPADE_BLOCKS[i], f"body.{i}", fin, fout, labels, "param_free_norm"))
    entries.append(conv("conv_img"))
    return KeyMap.of("SPADE generator", entries)


def spade_discriminator_map(spec: PatchGANSpec, instance_channel: bool) -> KeyMap:
    """MultiscaleDiscriminator (``*_net_D.pth``) -> MultiscalePatchDiscriminator."""
    inputs = DropChannel(1, spec.num_classes + 1) if instance_channel else Transform()
    entries: list[Entry | list[Entry]] = []
    for d in range(spec.num_d):
        reference, target = f"discriminator_{d}", f"scales.{d}.layers"
        entries.append(conv(f"{reference}.model0.0", f"{target}.0.0", inputs))
        for n in range(1, spec.n_layers):  # Sequential(Sequential(SN conv without bias, InstanceNorm), LeakyReLU)
            entries.append(sn_conv(f"{reference}.model{n}.0.0", f"{target}.{n}.0", bias="zero"))
        entries.append(conv(f"{reference}.model{spec.n_layers}.0", f"{target}.{spec.n_layers}.0"))
    return KeyMap.of("SPADE discriminator", entries)


def spade_encoder_map(spec: SPADEGeneratorSpec) -> KeyMap:
    """ConvEncoder (``*_net_E.pth``) -> SPADEEncoder."""
    entries: list[Entry | list[Entry]] = [
        sn_conv(f"layer{k + 1}.0", f"net.{3 * k}", bias="zero") for k in range(len(ENCODER_WIDTHS))
    ]
    entries += [conv("fc_mu"), conv("fc_var", "fc_logvar")]
    return KeyMap.of("SPADE encoder", entries)


# ---------------------------------------------------------------- settings from shapes
def _check_label_channels(found: int, num_classes: int, class_set: str, what: str, extra: str = "") -> None:
    if found != num_classes + 1:
        raise CheckpointImportError(
            f"{what} reads {found} label channels{extra}, but class set {class_set!r} has {num_classes} classes "
            f"(+ don't-care = {num_classes + 1} channels); choose the class set it was trained on (--classes)"
        )


def infer_oasis_spec(
    state: Mapping[str, torch.Tensor], num_classes: int, z_dim: int, class_set: str, dpgan: bool, what: str
) -> OASISGeneratorSpec | DPGANGeneratorSpec:
    inputs = stored_shape(state, "fc.weight", what)[1]
    _check_label_channels(inputs - z_dim, num_classes, class_set, what, f" (+ {z_dim} noise channels, --z-dim)")
    num_blocks = count_indexed(state, "body.{}.conv_0")
    base = stored_shape(state, "conv_img.weight", what)[1]
    if dpgan:
        pyramid = stored_shape(state, "seg_pyrmid.1.0.weight", what)[0]
        return DPGANGeneratorSpec(num_classes, z_dim, base, num_blocks, pyramid)
    return OASISGeneratorSpec(num_classes, z_dim, base, num_blocks)


def infer_unet_spec(state: Mapping[str, torch.Tensor], num_classes: int, what: str) -> UNetDiscriminatorSpec:
    first = stored_shape(state, "body_down.0.conv1.0.weight_orig", what)[0]
    return UNetDiscriminatorSpec(num_classes, first // D_WIDTH_MULTIPLIERS[0])


def infer_spade_spec(
    state: Mapping[str, torch.Tensor],
    num_classes: int,
    class_set: str,
    upsampling: str,
    image_size: tuple[int, int],
    what: str,
) -> tuple[SPADEGeneratorSpec, bool]:
    """(generator spec, whether it reads an instance-edge channel)."""
    label_channels = stored_shape(state, "head_0.norm_0.mlp_shared.0.weight", what)[1]
    instance_channel = label_channels == num_classes + 2
    _check_label_channels(label_channels - instance_channel, num_classes, class_set, what)
    nf = stored_shape(state, "head_0.conv_0.weight_orig", what)[0] // 16
    if any(k.startswith("up_4.") for k in state):
        upsampling = "most"
    elif upsampling == "most":
        raise CheckpointImportError(f"{what} has no up_4 block: it was trained with 'normal' or 'more' upsampling")
    fc = stored_shape(state, "fc.weight", what)
    use_vae = len(fc) == 2
    if not use_vae:
        return SPADEGeneratorSpec(num_classes, nf, upsampling), instance_channel
    factor = 2 ** UPSAMPLINGS[upsampling]
    height, width = image_size
    if (height // factor) * (width // factor) * 16 * nf != fc[0]:
        raise CheckpointImportError(
            f"{what} is a VAE generator whose first layer paints {fc[0] // (16 * nf)} latent cells, not the "
            f"{(height // factor) * (width // factor)} of {height}x{width} images with {upsampling!r} upsampling; "
            "pass the size it was trained on (--size HxW)"
        )
    spec = SPADEGeneratorSpec(num_classes, nf, upsampling, True, fc[1], (height, width))
    return spec, instance_channel


def infer_patchgan_spec(state: Mapping[str, torch.Tensor], num_classes: int, what: str) -> PatchGANSpec:
    num_d = count_indexed(state, "discriminator_{}.")
    n_layers = count_indexed(state, "discriminator_0.model{}.") - 1
    base = stored_shape(state, "discriminator_0.model0.0.weight", what)[0]
    return PatchGANSpec(num_classes, base, num_d, n_layers)
