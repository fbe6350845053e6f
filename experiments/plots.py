"""Plot helpers shared by experiments."""

from __future__ import annotations

import warnings

import numpy as np


def mean_band(ax, x: np.ndarray, curves: np.ndarray, label: str) -> None:
    """Mean over seeds (rows of ``curves``, NaN = no value yet) with a 95% confidence band."""
    with warnings.catch_warnings():  # columns where every seed is still NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        n = np.sum(np.isfinite(curves), 0).clip(1)
        mean = np.nanmean(curves, 0)
        sem = np.nanstd(curves, 0, ddof=1) / np.sqrt(n) if len(curves) > 1 else np.zeros_like(mean)
    ax.plot(x, mean, label=label)
    ax.fill_between(x, mean - 1.96 * sem, mean + 1.96 * sem, alpha=0.2)


def save_incumbent_plot(fig, ax, optimum: float, path, **axes) -> None:
    """Mark the benchmark optimum, label the axes (``ax.set(**axes)``), add the legend, save."""
    ax.axhline(optimum, color="k", ls=":", lw=1, label="optimum")
    ax.set(**axes)
    ax.legend()
    save_figure(fig, path, dpi=120)


def save_figure(fig, path, dpi: int = 110) -> None:
    """Lay out, save and close ``fig``, as a 64-colour palette PNG: plots have few colours,
    and the palette makes the file 3-4x smaller than RGBA, so the summaries kept in git
    (``docs/results/``) stay small."""
    import io

    import matplotlib.pyplot as plt
    from PIL import Image  # a dependency of matplotlib

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    image = Image.open(buf).convert("RGB")
    image.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(path, format="PNG", optimize=True)
