"""Command-line plumbing shared by experiments: a parser built from a frozen Config
dataclass, the output folder with its config.json, and resume checks."""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from pathlib import Path
from typing import Any, Sequence, TypeVar

import jax

C = TypeVar("C")


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


def parse(config_cls: type[C], argv: Sequence[str] | None, description: str) -> C:
    """Parse ``argv`` into ``config_cls``: one ``--flag`` per field (underscores as dashes).
    Also calls :func:`use_cpu_cores` (before any JAX work, as every experiment parses first)."""
    use_cpu_cores()
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    for f in dataclasses.fields(config_cls):
        flag = "--" + f.name.replace("_", "-")
        kind = f.type if isinstance(f.type, type) else eval(f.type, {}, {})  # "int", "str | None", ...
        base = next((t for t in (int, float, str) if t is kind or t in getattr(kind, "__args__", ())), str)
        parser.add_argument(flag, type=base, default=f.default, help=f.metadata.get("help", f.name))
    return config_cls(**vars(parser.parse_args(argv)))


def prepare_out(out: str | Path, config: Any, resume_keys: Sequence[str]) -> Path:
    """Create ``out``; write ``config.json``, or check that a resumed run has the same
    values for ``resume_keys`` (a different run must use a fresh folder)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = dataclasses.asdict(config)
    path = out / "config.json"
    if path.exists():
        old = json.loads(path.read_text())
        changed = {k: (old.get(k), cfg[k]) for k in resume_keys if old.get(k) != cfg[k]}
        if changed:
            raise ValueError(
                f"{out} holds a run with other settings {changed} (old, new); resume with the same "
                f"settings or choose another --out"
            )
    path.write_text(json.dumps(cfg, indent=2) + "\n")
    return out
