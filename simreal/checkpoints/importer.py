"""Turning the files a reference repository saves into a simreal run directory.

``import_checkpoints(kind, source, out)`` finds the reference files in ``source`` (a directory, or one of its
files), reads the network settings from their shapes, maps every key (``simreal.checkpoints.keymap``) and writes
``out/checkpoint.pt`` and ``out/config.yaml`` as ``simreal train`` would, so ``simreal synthesize`` /
``simreal translate`` use the run as it is and ``simreal train METHOD init=OUT`` fine-tunes from it. The
checkpoint carries no optimizer or data-loader state (the references save none): it is marked ``imported`` (source,
files, notes, and ``fresh``: networks the files hold no weights for) and training refuses to *resume* it.

Files per kind (``<which>`` is e.g. ``latest``, ``best`` or an iteration number):

- ``oasis`` / ``dpgan``: ``<which>_G.pth``, ``<which>_EMA.pth``, ``<which>_D.pth`` (G or EMA needed);
- ``spade``: ``<which>_net_G.pth`` (needed), ``<which>_net_D.pth``, ``<which>_net_E.pth`` (needed for a VAE G);
- ``sae``: as the reference's ``BaseModel.save`` writes them, one file per saved iteration holding the whole model,
  ``<N>k_checkpoint.pth`` with a ``latest_checkpoint.pth`` link to the newest (keys ``E.``, ``G.`` needed, ``D.``,
  ``Dpatch.``, and the ``num_discriminator_iters`` counter); or per-network files ``<which>_net_E.pth``,
  ``<which>_net_G.pth`` (needed), ``<which>_net_D.pth``, ``<which>_net_DPatch.pth``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import nn

from simreal.checkpoints.keymap import CheckpointImportError, KeyMap, normalize_reference
from simreal.inference import load_inference
from simreal.labels import LabelTable, get_class_set
from simreal.training import checkpoint as ckpt

KINDS = ("sae", "oasis", "dpgan", "spade")
FILE_SUFFIXES = {
    "oasis": {"G": "_G.pth", "EMA": "_EMA.pth", "D": "_D.pth"},
    "dpgan": {"G": "_G.pth", "EMA": "_EMA.pth", "D": "_D.pth"},
    "spade": {"G": "_net_G.pth", "D": "_net_D.pth", "E": "_net_E.pth"},
    "sae": {"E": "_net_E.pth", "G": "_net_G.pth", "D": "_net_D.pth", "DPatch": "_net_DPatch.pth"},
}
PREFERRED = ("best", "latest")
# SAE's release layout: the whole model in one file per iteration (role RELEASE in the files found)
SAE_RELEASE_SUFFIX, RELEASE = "_checkpoint.pth", "model"
DEFAULT_CLASS_SETS = {"oasis": "cityscapes-labelids", "dpgan": "cityscapes-labelids", "spade": "cityscapes-labelids"}


@dataclass(frozen=True)
class ImportOptions:
    """What the weights cannot tell: the class set they were trained on and settings with no parameters."""

    class_set: str | None = None  # None: cityscapes-labelids for the synthesizers, shared16 for SAE
    which: str | None = None  # file prefix; None: best, else latest, else the only one there is
    z_dim: int = 64  # OASIS / DP-GAN noise channels
    upsampling: str = "more"  # SPADE: normal | more (the Cityscapes setting) | most (detected from the weights)
    image_size: tuple[int, int] = (256, 512)  # SPADE VAE generators only: (H, W) they paint
    crop_size: int = 256  # SAE: square training crop the image discriminator was built for


@dataclass
class ImportResult:
    run_dir: Path
    method: str
    files: dict[str, Path]
    notes: list[str] = field(default_factory=list)


def find_reference_files(kind: str, source: str | Path, which: str | None = None) -> dict[str, Path]:
    """The files of one saved iteration, by network role (``G``, ``D``, ...)."""
    if kind not in FILE_SUFFIXES:
        raise CheckpointImportError(f"unknown checkpoint kind {kind!r}; choose from {', '.join(KINDS)}")
    suffixes = FILE_SUFFIXES[kind]
    source = Path(source).expanduser()
    if kind == "sae" and (release := sae_release_file(source, which)) is not None:
        return {RELEASE: release}
    if source.is_file():
        which = which or next((source.name.removesuffix(s) for s in suffixes.values() if source.name.endswith(s)), None)
        source = source.parent
    if not source.is_dir():
        raise CheckpointImportError(f"{source} does not exist")
    if kind in ("oasis", "dpgan") and (source / "models").is_dir() and not any(source.glob("*_G.pth")):
        source = source / "models"  # OASIS / DP-GAN save under <checkpoints_dir>/<name>/models/: the run folder works
    found: dict[str, dict[str, Path]] = {}
    for path in sorted(source.iterdir()):
        for role, suffix in suffixes.items():
            # the longest suffix wins: "x_net_G.pth" is SPADE's G, not a G of prefix "x_net"
            if path.name.endswith(suffix) and not any(
                path.name.endswith(other) and len(other) > len(suffix) for other in suffixes.values()
            ):
                found.setdefault(path.name.removesuffix(suffix), {})[role] = path
    names = ", ".join(f"<which>{s}" for s in suffixes.values())
    if kind == "sae":
        names = f"<N>k{SAE_RELEASE_SUFFIX} or latest{SAE_RELEASE_SUFFIX} as the reference saves them, or {names}"
    if not found:
        listing = ", ".join(sorted(p.name for p in source.iterdir())[:8]) or "nothing"
        raise CheckpointImportError(f"{source} holds no {kind} reference files ({names}); found: {listing}")
    if which is None:
        which = next((p for p in PREFERRED if p in found), None)
        if which is None and len(found) == 1:
            which = next(iter(found))
        if which is None:
            raise CheckpointImportError(f"{source} holds several saved iterations ({', '.join(found)}): pass --which")
    if which not in found:
        raise CheckpointImportError(f"{source} has no {kind} files for {which!r}; found: {', '.join(found)}")
    return found[which]


def sae_release_file(source: Path, which: str | None) -> Path | None:
    """The whole-model file of SAE's release layout that ``source`` (a file or a run folder) names, None when the
    source is not in that layout. Default iteration: ``latest``, else the only one, else the highest ``<N>k``."""
    if source.is_file():
        return source if source.name.endswith(SAE_RELEASE_SUFFIX) else None
    if not source.is_dir():
        return None
    saved = {path.name.removesuffix(SAE_RELEASE_SUFFIX): path for path in source.glob(f"*{SAE_RELEASE_SUFFIX}")}
    if not saved:
        return None
    if which is not None:
        if which not in saved:
            found = ", ".join(sorted(saved))
            raise CheckpointImportError(f"{source} has no {which}{SAE_RELEASE_SUFFIX}; found: {found}")
        return saved[which]
    if "latest" in saved:
        return saved["latest"]
    numbered = sorted((int(name[:-1]), name) for name in saved if name.endswith("k") and name[:-1].isdigit())
    if numbered:
        return saved[numbered[-1][1]]
    if len(saved) == 1:
        return next(iter(saved.values()))
    raise CheckpointImportError(f"{source} holds several saved iterations ({', '.join(sorted(saved))}): pass --which")


def load_reference(path: Path) -> dict[str, torch.Tensor]:
    """A reference state dict, normalised (``module.`` prefix, old spectral-norm layout)."""
    state = ckpt.read_torch_file(path, "PyTorch state dict")
    if not isinstance(state, dict):
        raise CheckpointImportError(f"{path} holds a {type(state).__name__}, not a state dict")
    return normalize_reference(state)


def map_into(module: nn.Module, key_map: KeyMap, reference: dict[str, torch.Tensor], path: Path) -> dict:
    """``module``'s state dict made from ``reference``; the module is loaded with it as a final check."""
    state = key_map.to_simreal(reference, module.state_dict(), source=str(path))
    module.load_state_dict(state)
    return state


def import_checkpoints(
    kind: str, source: str | Path, out: str | Path, options: ImportOptions = ImportOptions()
) -> ImportResult:
    """Read the reference files of ``kind`` in ``source`` and write the run directory ``out``."""
    files = find_reference_files(kind, source, options.which)
    out = Path(out).expanduser().resolve()
    if (out / ckpt.CHECKPOINT_NAME).exists():
        raise CheckpointImportError(f"{out} already holds a checkpoint; choose another --out")
    class_set = get_class_set(options.class_set or DEFAULT_CLASS_SETS.get(kind, "shared16"))
    if kind == "sae":
        from simreal.checkpoints.sae import import_sae

        state, overrides, notes, fresh = import_sae(files, class_set, options)
    else:
        state, overrides, notes = _import_synthesizer(kind, files, class_set, options)
        fresh = []
    state.update({"class_set": class_set.to_attrs(), "input_range": "tanh"})
    imported = {"source": str(Path(source).resolve()), "notes": notes, "files": files, "fresh": fresh}
    write_run(out, kind, state, overrides, imported)
    load_inference(out)  # the run rebuilds through the registry, as `synthesize` and `translate` will rebuild it
    return ImportResult(out, kind, files, notes)


def write_run(out: Path, method: str, state: dict, overrides: list[str], imported: dict) -> None:
    """``checkpoint.pt`` in the training loop's format (no optimizer, loader or RNG state) and ``config.yaml``."""
    from simreal.training.config import compose_training_config

    cfg = compose_training_config(method, [*overrides, f"out={out}"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.yaml").write_text(OmegaConf.to_yaml(cfg, resolve=True), encoding="utf-8")
    files = {role: str(path) for role, path in imported["files"].items()}
    payload = {
        "format": ckpt.CHECKPOINT_FORMAT,
        "method_name": method,
        "step": 0,
        "method": state,
        "imported": {**imported, "files": files},
    }
    ckpt.save_atomic(payload, out / ckpt.CHECKPOINT_NAME)


def _import_synthesizer(
    kind: str, files: dict[str, Path], class_set: LabelTable, options: ImportOptions
) -> tuple[dict, list[str], list[str]]:
    from simreal.checkpoints import synthesizers as maps
    from simreal.models.dpgan import DPGANDiscriminator
    from simreal.models.oasis import UNetDiscriminator
    from simreal.models.spade import MultiscalePatchDiscriminator, SPADEEncoder
    from simreal.training.registry import get_method

    method = get_method(kind).cls
    num_classes = max(class_set.ids) + 1
    notes: list[str] = []
    generator_files = [files[role] for role in ("G", "EMA") if role in files]
    if not generator_files:
        raise CheckpointImportError(f"no generator file (G or EMA) among {', '.join(map(str, files.values()))}")
    first = generator_files[0]
    reference = load_reference(first)
    instance_channel = False
    if kind == "spade":
        spec, instance_channel = maps.infer_spade_spec(
            reference, num_classes, class_set.name, options.upsampling, options.image_size, str(first)
        )
        g_map = maps.spade_generator_map(spec, instance_channel)
        overrides = [f"model.g_channels={spec.base_channels}", f"model.num_upsampling={spec.num_upsampling}"]
        overrides += [f"model.use_vae={str(spec.use_vae).lower()}", f"model.z_dim={spec.z_dim}"]
        if instance_channel:
            notes.append("the instance-edge input channel is fed zeros (no instances): its weights are dropped")
    else:
        spec = maps.infer_oasis_spec(reference, num_classes, options.z_dim, class_set.name, kind == "dpgan", str(first))
        g_map = maps.oasis_generator_map(spec)
        overrides = [f"model.z_dim={spec.z_dim}", f"model.g_channels={spec.base_channels}"]
        overrides.append(f"model.num_blocks={spec.num_blocks}")
        if kind == "dpgan":
            overrides.append(f"model.pyramid_channels={spec.pyramid_channels}")
    spec_dict = spec.to_dict()
    generators = {
        role: map_into(method.generator_from_spec(spec_dict), g_map, load_reference(files[role]), files[role])
        for role in ("G", "EMA")
        if role in files
    }
    state: dict = {
        "synthesizer": {"kind": kind, "generator_spec": spec_dict},
        "generator": generators.get("G", generators.get("EMA")),
    }
    if "EMA" in generators:
        state["ema"] = {"module": generators["EMA"], "updates": 0}
    if "D" in files:
        d_reference = load_reference(files["D"])
        if kind == "spade":
            d_spec = maps.infer_patchgan_spec(d_reference, num_classes, str(files["D"]))
            d_map = maps.spade_discriminator_map(d_spec, instance_channel)
            discriminator = MultiscalePatchDiscriminator(d_spec)
            overrides += [f"model.d_channels={d_spec.base_channels}", f"model.num_d={d_spec.num_d}"]
            overrides.append(f"model.d_layers={d_spec.n_layers}")
        else:
            d_spec = maps.infer_unet_spec(d_reference, num_classes, str(files["D"]))
            dpgan = kind == "dpgan"
            d_map = maps.unet_discriminator_map(d_spec, dpgan)
            discriminator = DPGANDiscriminator(d_spec) if dpgan else UNetDiscriminator(d_spec)
            overrides.append(f"model.d_channels={d_spec.base_channels}")
            notes.append("the discriminator's logit for label channel 0 (don't-care, never a target) is dropped")
        state["discriminator"] = map_into(discriminator, d_map, d_reference, files["D"])
    else:
        notes.append("no discriminator file: fine-tuning from this run starts with a fresh discriminator")
    if kind == "spade" and spec.use_vae:
        if "E" not in files:
            raise CheckpointImportError(f"{first} is a VAE generator: its style encoder (<which>_net_E.pth) is needed")
        e_map = maps.spade_encoder_map(spec)
        state["encoder"] = map_into(SPADEEncoder(spec), e_map, load_reference(files["E"]), files["E"])
    elif "E" in files:
        notes.append(f"{files['E']} is ignored: the generator is not a VAE one")
    return state, overrides, notes
