"""Convolution gradients inside control flow: JAX's own against jnas's written-out ones.

    python -m experiments.bench_conv_grads --out runs/bench_conv_grads

Times the input gradient and the kernel gradient of one stride-1 convolution of NB201's
first stage (batch 64, 32x32, 16 -> 16 channels, 3x3 and 1x1, float32) in three settings:
straight-line code, inside ``lax.switch`` (how an NB201 edge picks its op), and inside
``lax.switch`` within ``lax.map`` over 4 architectures (how ``proxies.score`` batches them,
per architecture), each with ``conv_grads="xla"`` (autodiff) and ``"explicit"``
(:mod:`jnas.nets.kernels`). Prints a table and writes ``bench_conv_grads.json`` and a bar chart
``bench_conv_grads.png``; the ratio is each time over the straight-line autodiff time of
the same gradient. About a minute on a 2-core CPU.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from jax import lax
from tqdm.auto import tqdm

from experiments.common import parse, prepare_out, save_figure
from jnas.nets.kernels import NHWC, CONV_GRADS, conv_fn
from jnas.proxies.roofline import seconds_per_call
from jnas.records import write_json

SETTINGS = ("plain", "switch", "map")
WRT = ("input", "kernel")


@dataclasses.dataclass(frozen=True)
class Config:
    out: str = dataclasses.field(default="runs/bench_conv_grads", metadata={"help": "output folder"})
    batch: int = 64
    side: int = 32
    channels: int = 16
    reps: int = 10
    seed: int = 0


def _case(row: dict) -> tuple:
    return row["kernel"], row["wrt"], row["setting"], row["conv_grads"]


def gradient_fn(conv_grads: str, setting: str, wrt: str, ksize: int):
    """Jitted ``(x, k3, k1, op) -> gradient`` of ``sum(conv(relu(x))^2)`` with respect to ``wrt``."""
    conv = conv_fn(conv_grads)
    argnum = 0 if wrt == "input" else (1 if ksize == 3 else 2)

    def op(x, k):
        p = (k.shape[0] - 1) // 2
        return conv(jax.nn.relu(x), k, (1, 1), ((p, p), (p, p)), dimension_numbers=NHWC)

    def loss(x, k3, k1, which):
        if setting == "plain":
            y = op(x, k3 if ksize == 3 else k1)
        else:  # identity, 1x1, 3x3: an edge's ops
            y = lax.switch(which, (lambda x: x, lambda x: op(x, k1), lambda x: op(x, k3)), x)
        return jnp.sum(y**2)

    grad = jax.grad(loss, argnum)
    # The op index is an argument, not a constant, so that XLA cannot fold the switch away.
    if setting == "map":
        return jax.jit(lambda x, k3, k1, which: lax.map(lambda w: grad(x, k3, k1, w), jnp.full(4, which)))
    return jax.jit(lambda x, k3, k1, which: grad(x, k3, k1, which))


def main(argv: Sequence[str] | None = None) -> list[dict]:
    cfg = parse(Config, argv, __doc__.split("\n\n")[0])
    out = prepare_out(cfg.out, cfg, resume_keys=())
    kx, k3, k1 = jax.random.split(jax.random.key(cfg.seed), 3)
    c = cfg.channels
    args = (
        jax.random.normal(kx, (cfg.batch, cfg.side, cfg.side, c)),
        jax.random.normal(k3, (3, 3, c, c)) / 12.0,
        jax.random.normal(k1, (1, 1, c, c)) / 4.0,
    )
    jobs = [(k, w, s, g) for k in (3, 1) for w in WRT for s in SETTINGS for g in CONV_GRADS]
    rows = []
    for ksize, wrt, setting, conv_grads in tqdm(jobs, desc="conv grads", unit="case"):
        op = jnp.int32(2 if ksize == 3 else 1)
        ms = seconds_per_call(gradient_fn(conv_grads, setting, wrt, ksize), args + (op,), cfg.reps) * 1e3
        if setting == "map":
            ms /= 4  # per architecture
        rows.append(dict(kernel=ksize, wrt=wrt, setting=setting, conv_grads=conv_grads, ms=ms,
                         backend=jax.default_backend(), device=str(jax.devices()[0].device_kind)))
    ms_of = {_case(r): r["ms"] for r in rows}
    for r in rows:
        r["x_plain_xla"] = r["ms"] / ms_of[(r["kernel"], r["wrt"], "plain", "xla")]
    write_json(out / "bench_conv_grads.json", rows, indent=2)
    print(f"{'kernel':>6}  {'gradient':<8}{'setting':<8}{'conv_grads':<11}{'ms':>8}{'x plain':>9}")
    for r in rows:
        print(f"{r['kernel']:>4}x{r['kernel']}  {r['wrt']:<8}{r['setting']:<8}{r['conv_grads']:<11}{r['ms']:>8.1f}{r['x_plain_xla']:>9.2f}")
    plot(rows, out / "bench_conv_grads.png")
    return rows


def plot(rows: list[dict], path) -> None:
    ms_of = {_case(r): r["ms"] for r in rows}
    cases = [(k, w) for k in (3, 1) for w in WRT]
    fig, axes = plt.subplots(1, len(cases), figsize=(3.6 * len(cases), 3.2), squeeze=False)
    for ax, (k, w) in zip(axes[0], cases):
        for i, g in enumerate(CONV_GRADS):
            ms = [ms_of[(k, w, s, g)] for s in SETTINGS]
            ax.bar([j + 0.4 * i for j in range(len(SETTINGS))], ms, width=0.4, label=g)
        ax.set_xticks([j + 0.2 for j in range(len(SETTINGS))], SETTINGS)
        ax.set_ylabel("ms per gradient")
        ax.set_title(f"{k}x{k} conv, d/d{w}", fontsize=9)
        ax.legend(fontsize=7)
    save_figure(fig, path)


if __name__ == "__main__":
    main()
