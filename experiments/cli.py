"""Command-line plumbing shared by experiments: a parser built from a frozen Config
dataclass, the output folder with its config.json, and resume checks."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, Sequence, TypeVar

C = TypeVar("C")


def parse(config_cls: type[C], argv: Sequence[str] | None, description: str) -> C:
    """Parse ``argv`` into ``config_cls``: one ``--flag`` per field (underscores as dashes)."""
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
