"""What experiments share, and nothing else: the command line (a parser built from a frozen
Config dataclass), the output folder (its config.json, a lock against a second writer, and
the resume check), CSV rows, and plot helpers. Library logic lives in ``jnas``; no experiment
imports another."""

from __future__ import annotations

import argparse
import csv
import dataclasses
import fcntl
import math
import os
import warnings
from pathlib import Path
from typing import Any, Sequence, TypeVar

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from jnas.records import read_json, write_json

C = TypeVar("C")
_LOCKS: dict[Path, int] = {}  # out folder -> open lock file descriptor, held until the process exits


def use_cpu_cores() -> int | None:
    """Give JAX one CPU device per core (``JNAS_CPU_DEVICES`` sets another count; 1 keeps
    JAX's single device), so that :func:`jnas.proxies.score` splits its ``map``/``vmap``
    chunks over them. Work on one device still uses every core; scores do not change.

    Does nothing (returns None) once JAX has started its backends, or when ``XLA_FLAGS``
    already sets ``--xla_force_host_platform_device_count``. Returns the count set.

    Raises:
      ValueError: ``JNAS_CPU_DEVICES`` is not a positive integer.
    """
    value = os.environ.get("JNAS_CPU_DEVICES", "")
    if value and not (value.isdigit() and int(value) >= 1):
        raise ValueError(f"JNAS_CPU_DEVICES must be a positive integer, got {value!r}")
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return None
    n = int(value) if value else (os.cpu_count() or 1)
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # JAX refuses once its backends have started
        return None
    return n


def use_compilation_cache() -> str | None:
    """Keep compiled programs on disk, so a killed run that resumes (or a rerun) does not compile
    again: a DARTS-space search step takes minutes to compile on CPU. The folder is
    ``JNAS_COMPILATION_CACHE`` (empty: off), else ``~/.cache/jnas/xla``; programs that
    compiled in under a second are not kept. Leaves a cache folder set elsewhere alone.
    Returns the folder used, None when off."""
    if jax.config.jax_compilation_cache_dir:
        return jax.config.jax_compilation_cache_dir
    folder = os.environ.get("JNAS_COMPILATION_CACHE", str(Path.home() / ".cache" / "jnas" / "xla"))
    if not folder:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
    return folder


def parse(config_cls: type[C], argv: Sequence[str] | None, description: str) -> C:
    """Parse ``argv`` into ``config_cls``: one ``--flag`` per field (underscores as dashes),
    each value checked against its field's bounds before anything runs (see :func:`check_field`).
    Also calls :func:`use_cpu_cores` (before any JAX work, as every experiment parses first)
    and :func:`use_compilation_cache`.

    Raises:
      ValueError: a value outside its field's bounds, naming the flag, the value and what is allowed.
    """
    use_cpu_cores()
    use_compilation_cache()
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        bounds = describe_bounds(f)
        help_text = f.metadata.get("help", f.name) + (f" ({bounds})" if bounds else "")
        parser.add_argument(flag, type=_base_type(f), default=f.default, help=help_text.replace("%", "%%"))
    values = vars(parser.parse_args(argv))
    for f in dataclasses.fields(config_cls):
        check_field(f, values[f.name])
    return config_cls(**values)


def _base_type(f: dataclasses.Field) -> type:
    kind = f.type if isinstance(f.type, type) else eval(f.type, {}, {})  # "int", "str | None", ...
    return next((t for t in (int, float, str) if t is kind or t in getattr(kind, "__args__", ())), str)


def _bounds(f: dataclasses.Field) -> dict:
    """A numeric field's bounds: its metadata's ``min`` and ``max`` (inclusive), ``above`` and
    ``below`` (exclusive); an int field without any is a size, at least 1 (``seed`` fields: at least 0)."""
    meta = {k: f.metadata[k] for k in ("min", "above", "max", "below") if k in f.metadata}
    number = _base_type(f) in (int, float) or "items" in f.metadata
    if number and not meta and (_base_type(f) is int or f.metadata.get("items") is int):
        meta = {"min": 0 if f.name.endswith("seed") else 1}
    return meta


def describe_bounds(f: dataclasses.Field) -> str:
    """The allowed values of a field, in words (for ``--help`` and errors)."""
    b, parts = _bounds(f), []
    if "choices" in f.metadata:
        return "one of " + ", ".join(map(str, f.metadata["choices"]))
    if "min" in b:
        parts.append(f">= {b['min']}")
    if "above" in b:
        parts.append(f"> {b['above']}")
    if "max" in b:
        parts.append(f"<= {b['max']}")
    if "below" in b:
        parts.append(f"< {b['below']}")
    text = " and ".join(parts)
    if "items" in f.metadata:
        text = f"comma-separated {f.metadata['items'].__name__}s" + (f", each {text}" if text else "")
        if f.metadata.get("words"):
            text += " (or " + ", ".join(f.metadata["words"]) + ")"
    return text


def check_field(f: dataclasses.Field, value: Any) -> None:
    """Refuse a value outside the field's bounds, naming the flag. Metadata understood:
    ``min``/``above``/``max``/``below`` (numbers), ``choices`` (strings), ``items`` (int or float: a
    comma-separated list, each item bounded the same way) with ``words`` (strings allowed instead,
    e.g. ``"all"``). An int field with no bounds is a size and must be at least 1."""
    flag = "--" + f.name.replace("_", "-")
    if value is None:
        return
    if "choices" in f.metadata:
        if value not in f.metadata["choices"]:
            raise ValueError(f"{flag} must be one of {list(f.metadata['choices'])}, got {value!r}")
        return
    b = _bounds(f)
    if "items" in f.metadata:
        if value in f.metadata.get("words", ()):
            return
        kind = f.metadata["items"]
        items = [v.strip() for v in str(value).split(",")]
        try:
            numbers = [kind(v) for v in items]
        except ValueError:
            raise ValueError(f"{flag} must be {describe_bounds(f)}, got {value!r}") from None
        if not numbers:
            raise ValueError(f"{flag} must list at least one value, got {value!r}")
    elif isinstance(value, (int, float)):
        numbers = [value]
    else:
        return
    for v in numbers:
        if (not math.isfinite(v) or ("min" in b and v < b["min"]) or ("above" in b and v <= b["above"])
                or ("max" in b and v > b["max"]) or ("below" in b and v >= b["below"])):
            raise ValueError(f"{flag} must be {describe_bounds(f)}, got {value}")


def prepare_out(out: str | Path, config: Any, resume_keys: Sequence[str]) -> Path:
    """Create ``out``, lock it against a second process, and write ``config.json``.

    A folder that already holds finished work (any file besides ``config.json`` and the lock)
    must have been made with the same values for ``resume_keys``: the run resumes it. A folder
    holding only the ``config.json`` of a run that failed before finishing anything is taken
    over with the new settings, so fixing a bad flag never needs a new ``--out``.

    Raises:
      ValueError: another process holds the folder, or it holds finished work of other settings.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    key = out.resolve()
    if key not in _LOCKS:
        fd = os.open(out / ".lock", os.O_CREAT | os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise ValueError(f"another process is writing to {out} (it holds {out / '.lock'}); wait for it or choose "
                             "another --out") from None
        _LOCKS[key] = fd
    cfg = dataclasses.asdict(config)
    path = out / "config.json"
    work = [p for p in out.iterdir() if p.name not in ("config.json", ".lock")]
    if path.exists() and work:
        old = read_json(path)
        changed = {k: (old.get(k), cfg[k]) for k in resume_keys if old.get(k) != cfg[k]}
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings {changed} (old, new); resume with the same "
                f"settings or choose another --out"
            )
    write_json(path, cfg)
    return out


def write_csv(path: str | Path, rows: list[dict]) -> None:
    """Rows of dicts as a CSV; the header is every key in order of first appearance (a row
    without a key leaves its cell empty)."""
    header = list(dict.fromkeys(k for row in rows for k in row))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, header)
        w.writeheader()
        w.writerows(rows)


def generation_rows(values: np.ndarray, larger_is_better: bool = True) -> list[dict]:
    """Per generation (row of ``values``): best, mean, worst and the best so far."""
    pick, drop = (np.max, np.min) if larger_is_better else (np.min, np.max)
    rows, best = [], None
    for gen, v in enumerate(np.asarray(values)):
        best = float(pick(v)) if best is None else float(pick([best, pick(v)]))
        rows.append({"generation": gen, "best": float(pick(v)), "mean": float(v.mean()), "worst": float(drop(v)),
                     "best_so_far": best})
    return rows


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


def save_figure(fig, path, dpi: int = 110, colors: int = 64) -> None:
    """Lay out, save and close ``fig``, as a ``colors``-colour palette PNG: plots have few
    colours, and the palette makes the file 3-4x smaller than RGBA, so the summaries kept in
    git (``docs/results/``) stay small (figures of photographs: 32 colours)."""
    import io

    from PIL import Image  # a dependency of matplotlib

    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, dpi=dpi, format="png")
    plt.close(fig)
    image = Image.open(buf).convert("RGB")
    image.quantize(colors=colors, method=Image.Quantize.MEDIANCUT).save(path, format="PNG", optimize=True)


def save_generation_plot(rows: list[dict], path: str | Path, xlabel: str, ylabel: str, title: str) -> None:
    """Best, mean and worst value per generation."""
    gens = [r["generation"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    for k, style in (("best", "o-"), ("mean", "s-"), ("worst", "^-")):
        ax.plot(gens, [r[k] for r in rows], style, label=k)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.legend()
    save_figure(fig, path, dpi=120)


def plot_curves(curves: dict[str, np.ndarray], report: str, title: str, path: Path, optimum: float) -> None:
    """Mean best-so-far report per strategy with a 95% confidence band over seeds."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, c in curves.items():
        mean_band(ax, np.arange(1, c.shape[1] + 1), c, name)
    save_incumbent_plot(fig, ax, optimum, path, xlabel="queries", ylabel=f"incumbent {report}", title=title,
                        ylim=(optimum - 3, optimum + 0.3))


def rank_agreement(scores: np.ndarray, truth: np.ndarray, top: float = 0.1) -> dict:
    """How well ``scores`` rank the items the way ``truth`` does, over the items whose truth
    is finite (a cell missing from a table column is NaN): Kendall tau with its p-value,
    Spearman rho (scipy), and the overlap of the top ``top`` fraction by each."""
    from scipy import stats

    scores, truth = np.asarray(scores, float), np.asarray(truth, float)
    ok = np.isfinite(truth)
    if ok.sum() < 2:
        raise ValueError(f"rank agreement needs at least 2 items with a finite truth value; got {int(ok.sum())}")
    tau = stats.kendalltau(scores[ok], truth[ok])
    k = max(1, int(ok.sum() * top))
    best = lambda v: set(np.argsort(-v[ok], kind="stable")[:k])
    return {"n": int(ok.sum()), "kendall_tau": float(tau.statistic), "kendall_p": float(tau.pvalue),
            "spearman": float(stats.spearmanr(scores[ok], truth[ok]).statistic), "top_overlap": len(best(scores) & best(truth)) / k}
