"""A hybrid CNN-Transformer encoder space with elastic depth, width, heads, MLP ratio, kernel
size and input resolution, for U-shaped dense-prediction networks (:mod:`jnas.nets.hybrid`).

The space follows the two designs the application note (docs/segmentation.md) builds on:
BossNAS's hybrid search space (Li et al., ICCV 2021), where every stage of a
downsampling encoder picks a convolutional or a self-attention block, and ElasticViT (Tang et
al., ICCV 2023), where depth, width, heads, MLP ratio and input resolution are elastic so
that one set of weights serves several devices.

An architecture is an int32 array of ``1 + 6 * stages`` gene indices::

    [resolution, (block, depth, width, heads, mlp, kernel) for each stage]

* ``block``: ``"conv"`` (residual block of two k x k convolutions), ``"mbconv"`` (inverted
  residual: 1x1 expansion by ``mlp``, k x k depthwise, 1x1 projection) or ``"transformer"``
  (multi-head self-attention and an MLP of ratio ``mlp``, after a k x k depthwise
  convolutional position encoding, as CPVT/ElasticViT); stages list the blocks they allow
  (full-resolution attention is the memory hog, so stage 0 holds convolutions by default);
* ``depth``: blocks in the stage (after its stride-2 downsampling convolution);
* ``width``: channels (the embedding dimension of a Transformer stage);
* ``heads``: attention heads (Transformer stages only: unused genes of other blocks are kept
  so every genome is valid and the genome is a plain categorical product);
* ``mlp``: MLP ratio (Transformer) or expansion ratio (MBConv); unused by ``"conv"``;
* ``kernel``: convolution kernel side (the position encoding's for Transformer blocks).

Every width is divisible by every head count (checked when the space is built), so each
genome is a valid network. The string form spells values, not indices::

    r64|conv:d2w16h1m2k3|mbconv:d1w32h1m4k5|transformer:d2w48h4m2k3|transformer:d1w64h2m2k3

and :meth:`HybridSpace.from_string` rejects a value outside the space, naming the field, the
stage and the allowed values (including a width not divisible by the head count).
"""

from __future__ import annotations

import dataclasses
import re
from typing import NamedTuple

import numpy as np

from jnas.spaces.base import Categorical

BLOCKS = ("conv", "mbconv", "transformer")
STAGE_FIELDS = ("block", "depth", "width", "heads", "mlp", "kernel")
GENES_PER_STAGE = len(STAGE_FIELDS)


class Stage(NamedTuple):
    """One encoder stage, in values."""

    block: str
    depth: int
    width: int
    heads: int
    mlp: int
    kernel: int


class Candidate(NamedTuple):
    """A decoded architecture: input resolution and one :class:`Stage` per encoder stage."""

    resolution: int
    stages: tuple[Stage, ...]


@dataclasses.dataclass(frozen=True)
class HybridSpace(Categorical):
    """Static facts of the space (hashable: a static jit argument).

    Defaults: four stages (64 -> 32 -> 16 -> 8 -> 4 at resolution 64), widths up to
    16/32/48/64, depth 1-3, 1-4 heads, ratios 2 and 4, kernels 3 and 5.
    """

    resolutions: tuple[int, ...] = (48, 64)
    stage_blocks: tuple[tuple[str, ...], ...] = (("conv", "mbconv"),) + (BLOCKS,) * 3
    depths: tuple[int, ...] = (1, 2, 3)
    widths: tuple[tuple[int, ...], ...] = ((8, 12, 16), (16, 24, 32), (24, 36, 48), (32, 48, 64))
    heads: tuple[int, ...] = (1, 2, 4)
    mlp_ratios: tuple[int, ...] = (2, 4)
    kernels: tuple[int, ...] = (3, 5)
    stem_width: int = 16  # full-resolution stem convolution (fixed; also the last decoder level)

    def __post_init__(self):
        s = len(self.stage_blocks)
        if s < 1 or len(self.widths) != s:
            raise ValueError(f"need one block list and one width list per stage, got {s} and {len(self.widths)}")
        for i, blocks in enumerate(self.stage_blocks):
            bad = [b for b in blocks if b not in BLOCKS]
            if not blocks or bad:
                raise ValueError(f"stage {i} blocks {blocks}: each must be one of {list(BLOCKS)}")
        for name in ("resolutions", "depths", "heads", "mlp_ratios", "kernels"):
            values = getattr(self, name)
            if not values or any(int(v) < 1 for v in values) or list(values) != sorted(set(values)):
                raise ValueError(f"{name} must be distinct positive ints in increasing order, got {values}")
        if any(k % 2 == 0 for k in self.kernels):
            raise ValueError(f"kernel sizes must be odd ('same' padding, centre crops), got {self.kernels}")
        for i, ws in enumerate(self.widths):
            if not ws or list(ws) != sorted(set(ws)) or ws[0] < 1:
                raise ValueError(f"stage {i} widths must be distinct positive ints in increasing order, got {ws}")
            for w in ws:
                bad = [h for h in self.heads if w % h]
                if bad:
                    raise ValueError(f"stage {i} width {w} is not divisible by head count(s) {bad}; every width "
                                     f"must divide by every head count {self.heads}")
        smallest = min(self.resolutions)
        if smallest % 2 ** s:
            raise ValueError(f"resolution {smallest} does not halve {s} times evenly; use multiples of {2 ** s}")

    # ----------------------------------------------------------------- genome layout
    @property
    def stages(self) -> int:
        return len(self.stage_blocks)

    @property
    def choices(self) -> tuple[int, ...]:
        per_stage = []
        for i in range(self.stages):
            per_stage += [len(self.stage_blocks[i]), len(self.depths), len(self.widths[i]), len(self.heads),
                          len(self.mlp_ratios), len(self.kernels)]
        return (len(self.resolutions), *per_stage)

    name = "hybrid"
    # ~2e10 genomes by default: no dense int32 index (the optional capability of jnas.spaces.base)
    to_index = None
    from_index = None

    @property
    def arch_shape(self) -> tuple[int, ...]:
        return (1 + GENES_PER_STAGE * self.stages,)

    @staticmethod
    def gene(stage: int, field: str) -> int:
        """Position of ``field`` of ``stage`` in the genome."""
        return 1 + GENES_PER_STAGE * stage + STAGE_FIELDS.index(field)

    def _values(self, stage: int, field: str) -> tuple:
        return {"block": self.stage_blocks[stage], "depth": self.depths, "width": self.widths[stage],
                "heads": self.heads, "mlp": self.mlp_ratios, "kernel": self.kernels}[field]

    # ----------------------------------------------------------------- decoding
    def check(self, archs) -> np.ndarray:
        """Validate one genome or a batch (shape, dtype, every gene within its values); a bad
        gene's error names its stage and field and lists the allowed values."""
        return self.check_genes(archs)

    def describe_gene(self, j: int) -> str:
        if j == 0:
            return f" (gene 0: resolution, values {list(self.resolutions)})"
        stage, field = divmod(j - 1, GENES_PER_STAGE)
        return f" (gene {j}: stage {stage} {STAGE_FIELDS[field]}, values {list(self._values(stage, STAGE_FIELDS[field]))})"

    def decode(self, arch) -> Candidate:
        """The values an architecture stands for."""
        a = self.check(arch)
        if a.ndim != 1:
            raise ValueError(f"decode takes one architecture, got shape {a.shape}")
        stages = []
        for s in range(self.stages):
            idx = a[1 + GENES_PER_STAGE * s: 1 + GENES_PER_STAGE * (s + 1)]
            stages.append(Stage(*(self._values(s, f)[int(i)] for f, i in zip(STAGE_FIELDS, idx))))
        return Candidate(int(self.resolutions[int(a[0])]), tuple(stages))

    def encode_values(self, candidate: Candidate) -> np.ndarray:
        """Inverse of :meth:`decode`; a value outside the space is a ValueError naming it."""
        if candidate.resolution not in self.resolutions:
            raise ValueError(f"resolution {candidate.resolution} is not in the space; allowed {list(self.resolutions)}")
        if len(candidate.stages) != self.stages:
            raise ValueError(f"the space has {self.stages} stages, the candidate {len(candidate.stages)}")
        genes = [self.resolutions.index(candidate.resolution)]
        for s, stage in enumerate(candidate.stages):
            for field, value in zip(STAGE_FIELDS, stage):
                allowed = self._values(s, field)
                if value not in allowed:
                    raise ValueError(f"stage {s} {field} {value!r} is not in the space; allowed values {list(allowed)}")
                genes.append(allowed.index(value))
            if stage.width % stage.heads:
                raise ValueError(f"stage {s} width {stage.width} is not divisible by its {stage.heads} heads; "
                                 f"allowed head counts for width {stage.width}: "
                                 f"{[h for h in self.heads if stage.width % h == 0]}")
        return np.asarray(genes, np.int32)

    def canonical(self, archs) -> np.ndarray:
        """Genomes with their unused genes set to index 0 (heads outside Transformer stages,
        the MLP ratio of plain conv stages): two genomes build the same network exactly when
        their canonical forms are equal. One genome or a batch."""
        a = self.check(archs).copy()
        flat = a.reshape(-1, a.shape[-1])
        for s in range(self.stages):
            block = np.asarray(self.stage_blocks[s])[flat[:, self.gene(s, "block")]]
            flat[block != "transformer", self.gene(s, "heads")] = 0
            flat[block == "conv", self.gene(s, "mlp")] = 0
        return flat.reshape(a.shape)

    def with_resolutions(self, resolutions) -> "HybridSpace":
        """The same space with only ``resolutions`` as input sizes (a search restricted to the
        size a network is evaluated at); its genomes map back with :meth:`convert`."""
        res = tuple(sorted({int(r) for r in resolutions}))
        bad = [r for r in res if r not in self.resolutions]
        if not res or bad:
            raise ValueError(f"resolutions {list(resolutions)}: each must be one of the space's {list(self.resolutions)}")
        return dataclasses.replace(self, resolutions=res)

    def convert(self, archs, source: "HybridSpace") -> np.ndarray:
        """Genomes of ``source`` (another variant of this space, e.g. :meth:`with_resolutions`)
        re-encoded in this one by value: gene indices differ between variants, values do not.
        A value this space lacks is a ValueError naming it."""
        if source == self:
            return self.check(archs)
        a = np.asarray(source.check(archs))
        flat = a.reshape(-1, a.shape[-1])
        out = [self.from_string(source.to_string(x)) for x in flat]
        return np.stack(out).reshape(*a.shape[:-1], *self.arch_shape) if out else np.zeros((*a.shape[:-1], *self.arch_shape), np.int32)

    # ----------------------------------------------------------------- strings
    def to_string(self, arch) -> str:
        c = self.decode(arch)
        return "|".join([f"r{c.resolution}"] + [f"{s.block}:d{s.depth}w{s.width}h{s.heads}m{s.mlp}k{s.kernel}"
                                                 for s in c.stages])

    _STAGE = re.compile(r"^([a-z]+):d(\d+)w(\d+)h(\d+)m(\d+)k(\d+)$")

    def from_string(self, text: str) -> np.ndarray:
        parts = text.strip().split("|")
        form = "r<res>|<block>:d<depth>w<width>h<heads>m<mlp>k<kernel>|..."
        if len(parts) != 1 + self.stages or not re.fullmatch(r"r\d+", parts[0]):
            raise ValueError(f"hybrid architecture {text!r} must read {form} with {self.stages} stages")
        stages = []
        for s, part in enumerate(parts[1:]):
            m = self._STAGE.match(part)
            if not m:
                raise ValueError(f"stage {s} {part!r} of {text!r} must read <block>:d<depth>w<width>h<heads>m<mlp>k<kernel>")
            stages.append(Stage(m.group(1), *(int(v) for v in m.groups()[1:])))
        return self.encode_values(Candidate(int(parts[0][1:]), tuple(stages)))

    # ----------------------------------------------------------------- maxima (supernet shapes)
    @property
    def max_width(self) -> tuple[int, ...]:
        return tuple(max(w) for w in self.widths)

    def lookup(self, field: str) -> np.ndarray:
        """``(stages, max choices)`` table of values by gene index (padded with the last value),
        so a traced genome can be turned into values with one gather."""
        rows = [list(self._values(s, field)) for s in range(self.stages)]
        if field == "block":
            rows = [[BLOCKS.index(b) for b in r] for r in rows]
        n = max(len(r) for r in rows)
        return np.asarray([r + [r[-1]] * (n - len(r)) for r in rows], np.int32)


SPACE = HybridSpace()
# Two stages of a few channels at 8-16 pixels: tests and quick runs of the whole pipeline.
TINY = HybridSpace(resolutions=(16, 32), stage_blocks=(("conv", "mbconv"), BLOCKS), widths=((4, 8), (8, 16)),
                   depths=(1, 2), heads=(1, 2, 4), mlp_ratios=(1, 2), kernels=(1, 3), stem_width=4)
VARIANTS = {"default": SPACE, "tiny": TINY}
