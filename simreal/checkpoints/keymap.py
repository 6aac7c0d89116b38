"""Key maps between a reference implementation's state dict and a simreal module's, checked both ways.

A ``KeyMap`` is a list of ``Entry``s, one per simreal tensor: the reference key it comes from (or none, for a
tensor the reference does not have, e.g. a conv bias that the reference removed before an InstanceNorm) and a
``Transform`` when the layouts differ (input channels in another order, a channel simreal does not have). Constant
buffers only the reference saves (blur kernels) are entries without a simreal tensor: their value is checked,
since simreal builds the same constant into its layers.
``to_simreal`` refuses, naming them, reference keys that are missing or unexpected and tensors of the wrong shape;
``to_reference`` is the inverse, which also gives the reference layout a map expects.

Reference files are normalised first (``normalize_reference``): a ``module.`` prefix (DataParallel) is stripped,
and spectral-norm layers saved by ``torch.nn.utils.spectral_norm`` (``weight_orig``, ``weight_u``, ``weight_v``)
get the ``weight_v`` that checkpoints of PyTorch < 1.0 lack (solved as PyTorch's loader does) and lose the
``weight`` those versions also saved.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from simreal.errors import ModelError

MAX_LISTED = 12  # keys named per kind of problem in an error message

SN_SUFFIXES = {
    "weight_orig": "parametrizations.weight.original",
    "weight_u": "parametrizations.weight.0._u",
    "weight_v": "parametrizations.weight.0._v",
}


class CheckpointImportError(ModelError):
    """A reference checkpoint that does not fit the simreal network it is imported into."""


class Transform:
    """Identity: the tensor has the same layout on both sides."""

    def to_simreal(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor

    def to_reference(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor


@dataclass(frozen=True)
class NoiseFirst(Transform):
    """The reference concatenates (noise, labels) where simreal concatenates (labels, noise): input channels."""

    z_dim: int

    def to_simreal(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor[:, self.z_dim :], tensor[:, : self.z_dim]], 1)

    def to_reference(self, tensor: torch.Tensor) -> torch.Tensor:
        return torch.cat([tensor[:, -self.z_dim :], tensor[:, : -self.z_dim]], 1)


@dataclass(frozen=True)
class LeadingAxis(Transform):
    """The reference keeps a leading axis of size 1 (StyleGAN2's modulated conv weight, 1 x out x in x k x k)."""

    def to_simreal(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[0]

    def to_reference(self, tensor: torch.Tensor) -> torch.Tensor:
        return tensor[None]


@dataclass(frozen=True)
class DropChannel(Transform):
    """A channel along ``dim`` that the reference has and simreal does not (zeros when exported)."""

    dim: int
    index: int

    def to_simreal(self, tensor: torch.Tensor) -> torch.Tensor:
        keep = [i for i in range(tensor.shape[self.dim]) if i != self.index]
        return tensor.index_select(self.dim, torch.tensor(keep))

    def to_reference(self, tensor: torch.Tensor) -> torch.Tensor:
        shape = list(tensor.shape)
        shape[self.dim] = 1
        before, after = tensor.split([self.index, tensor.shape[self.dim] - self.index], self.dim)
        return torch.cat([before, tensor.new_zeros(shape), after], self.dim)


@dataclass(frozen=True)
class Entry:
    """One simreal tensor (``target``) and where it comes from in the reference (``reference``; None = zeros), or a
    reference constant (``target`` None) that must hold ``constant``."""

    reference: str | None
    target: str | None
    transform: Transform = field(default_factory=Transform)
    optional: bool = False  # the reference may lack it (then the simreal module keeps its own value)
    constant: torch.Tensor | None = None


def constant(reference: str, value: torch.Tensor) -> Entry:
    return Entry(reference, None, constant=value)


def entry(reference: str, target: str | None = None, transform: Transform | None = None) -> Entry:
    return Entry(reference, target or reference, transform or Transform())


def conv(
    reference: str, target: str | None = None, transform: Transform | None = None, bias: bool = True
) -> list[Entry]:
    """A plain conv or linear layer: ``weight`` (transformed) and ``bias``."""
    target = target or reference
    entries = [entry(f"{reference}.weight", f"{target}.weight", transform)]
    if bias:
        entries.append(entry(f"{reference}.bias", f"{target}.bias", _bias_part(transform)))
    return entries


def _bias_part(transform: Transform | None) -> Transform | None:
    """Output-channel transforms apply to the bias too; input-channel ones do not."""
    return transform if isinstance(transform, DropChannel) and transform.dim == 0 else None


def sn_conv(reference: str, target: str | None = None, bias: str = "same") -> list[Entry]:
    """A spectral-norm conv: old-style ``weight_orig/_u/_v`` <-> parametrization ``original/_u/_v``.

    ``bias``: ``same`` (both have one), ``none`` (neither) or ``zero`` (only simreal's has one; the reference removed
    it because a norm follows, where a per-channel constant has no effect).
    """
    target = target or reference
    entries = [entry(f"{reference}.{ref}", f"{target}.{ours}") for ref, ours in SN_SUFFIXES.items()]
    if bias == "same":
        entries.append(entry(f"{reference}.bias", f"{target}.bias"))
    elif bias == "zero":
        entries.append(Entry(None, f"{target}.bias"))
    return entries


def batch_norm(reference: str, target: str | None = None, affine: bool = True) -> list[Entry]:
    """BatchNorm statistics (+ affine weight and bias); ``num_batches_tracked`` is absent before PyTorch 0.4.1."""
    target = target or reference
    names = ["weight", "bias"] if affine else []
    entries = [entry(f"{reference}.{n}", f"{target}.{n}") for n in [*names, "running_mean", "running_var"]]
    entries.append(Entry(f"{reference}.num_batches_tracked", f"{target}.num_batches_tracked", optional=True))
    return entries


@dataclass(frozen=True)
class KeyMap:
    """The map of one network; ``name`` (e.g. ``OASIS generator``) appears in every error."""

    name: str
    entries: tuple[Entry, ...]

    @classmethod
    def of(cls, name: str, entries: Iterable[Entry | list[Entry]]) -> KeyMap:
        flat: list[Entry] = []
        for item in entries:
            flat.extend(item if isinstance(item, list) else [item])
        return cls(name, tuple(flat))

    def check_covers(self, template: Mapping[str, torch.Tensor]) -> None:
        """Every simreal tensor has exactly one entry (a programming error otherwise, caught by the tests)."""
        targets = [e.target for e in self.entries if e.target is not None]
        duplicated = sorted({t for t in targets if targets.count(t) > 1})
        uncovered = sorted(set(template) - set(targets))
        unknown = sorted(set(targets) - set(template))
        if duplicated or uncovered or unknown:
            raise AssertionError(
                f"{self.name} key map: duplicated {duplicated[:MAX_LISTED]}, simreal keys without an entry "
                f"{uncovered[:MAX_LISTED]}, entries for keys simreal lacks {unknown[:MAX_LISTED]}"
            )

    def to_simreal(
        self, reference: Mapping[str, torch.Tensor], template: Mapping[str, torch.Tensor], source: str = ""
    ) -> dict[str, torch.Tensor]:
        """The simreal state dict from a (normalised) reference one; ``template`` is the target module's own."""
        self.check_covers(template)
        expected = {e.reference: e for e in self.entries if e.reference is not None}
        missing = [key for key, e in expected.items() if key not in reference and not e.optional]
        unexpected = [key for key in reference if key not in expected]
        wrong = []
        for key, entry in expected.items():
            if key in reference:
                want = tuple(self._reference_value(entry, template).shape)
                if tuple(reference[key].shape) != want:
                    wrong.append(f"{key} {tuple(reference[key].shape)} (expected {want})")
                elif entry.constant is not None and not torch.allclose(reference[key].float(), entry.constant):
                    wrong.append(f"{key}: another constant than simreal's {entry.constant.flatten().tolist()}")
        if missing or unexpected or wrong:
            raise CheckpointImportError(self._describe(source, missing, unexpected, wrong))
        state = {}
        for entry in self.entries:
            if entry.target is None:
                continue
            own = template[entry.target]
            if entry.reference is None:
                state[entry.target] = torch.zeros_like(own)
            elif entry.reference not in reference:  # optional and absent
                state[entry.target] = own.clone()
            else:
                value = entry.transform.to_simreal(reference[entry.reference])
                state[entry.target] = value.to(own.dtype).clone()
        return state

    def to_reference(self, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The reference-layout state dict of a simreal one (what the reference code would save)."""
        self.check_covers(state)
        return {e.reference: self._reference_value(e, state).clone() for e in self.entries if e.reference is not None}

    @staticmethod
    def _reference_value(entry: Entry, state: Mapping[str, torch.Tensor]) -> torch.Tensor:
        if entry.target is None:
            assert entry.constant is not None
            return entry.constant
        return entry.transform.to_reference(state[entry.target])

    def _describe(self, source: str, missing: list[str], unexpected: list[str], wrong: list[str]) -> str:
        def listing(keys: list[str]) -> str:
            more = f" and {len(keys) - MAX_LISTED} more" if len(keys) > MAX_LISTED else ""
            return ", ".join(keys[:MAX_LISTED]) + more

        parts = []
        if missing:
            parts.append(f"missing keys: {listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {listing(unexpected)}")
        if wrong:
            parts.append(f"wrong shapes: {listing(wrong)}")
        where = f"{source} " if source else ""
        return f"{where}does not fit the {self.name} ({'; '.join(parts)})"


def normalize_reference(state: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """Strip a DataParallel ``module.`` prefix; complete old-style spectral-norm entries (see module docstring)."""
    tensors = {str(k): v for k, v in state.items() if isinstance(v, torch.Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    for key in [k for k in tensors if k.split(".")[-1] == "weight_orig"]:
        prefix = key.removesuffix("weight_orig")
        stale = tensors.pop(f"{prefix}weight", None)  # W / sigma, derived by the hook; saved before PyTorch 1.0
        u_key, v_key = f"{prefix}weight_u", f"{prefix}weight_v"
        if v_key not in tensors and u_key in tensors:
            tensors[v_key] = _solve_v(tensors[key], tensors[u_key], stale)
    return tensors


def _solve_v(weight_orig: torch.Tensor, u: torch.Tensor, stale: torch.Tensor | None) -> torch.Tensor:
    """The power-iteration vector v that PyTorch's loader derives for a checkpoint without one: v with
    u = normalize(W v) and u·W v = sigma (sigma from the saved W / sigma), else the next power-iteration step."""
    matrix = weight_orig.reshape(weight_orig.shape[0], -1)
    if stale is None:
        return F.normalize(matrix.t().mv(u), dim=0, eps=1e-12)
    sigma = (weight_orig / stale).mean()
    v = torch.linalg.multi_dot([matrix.t().mm(matrix).pinverse(), matrix.t(), u.unsqueeze(1)]).squeeze(1)
    return v * (sigma / torch.dot(u, matrix.mv(v)))


def stored_shape(state: Mapping[str, torch.Tensor], key: str, what: object) -> tuple[int, ...]:
    """The shape of ``state[key]``, read to infer a reference network's settings; a missing key is refused."""
    if key not in state:
        raise CheckpointImportError(f"{what} has no {key!r}: not a reference checkpoint of this network")
    return tuple(state[key].shape)


def count_indexed(state: Mapping[str, torch.Tensor], pattern: str) -> int:
    """How many consecutive indices ``pattern.format(i)`` prefixes a key for (e.g. ``"body.{}.conv_0"``)."""
    count = 0
    while any(k.startswith(pattern.format(count)) for k in state):
        count += 1
    return count
