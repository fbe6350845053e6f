"""The one way jnas checkpoints a pytree (trainer state, search state): flax msgpack with a
SHA-256 checksum, written atomically, the previous checkpoint kept beside it.

A damaged checkpoint (truncated, overwritten bytes, empty) is refused by name; :func:`restore`
then falls back to the previous good one (``<name>.prev``) with a warning, so one bad write
costs one unit of work, never the run.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from typing import Any

import flax.serialization

MAGIC = b"JNASCKPT1\n"  # format tag, then the hex SHA-256 of the payload and a newline, then the payload


def save(path: str | Path, state: Any, **meta) -> None:
    """Write ``state`` (any pytree flax can serialise) and ``meta`` (msgpack-able values, e.g.
    ``epoch=3``) to ``path``; the checkpoint it replaces becomes ``path.prev``."""
    path = Path(path)
    payload = flax.serialization.msgpack_serialize({"state": flax.serialization.to_state_dict(state), "meta": meta})
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload)
        f.flush()
        os.fsync(f.fileno())
    if path.exists():
        os.replace(path, _prev(path))
    os.replace(tmp, path)


def _prev(path: Path) -> Path:
    return path.with_name(path.name + ".prev")


def _read(path: Path) -> dict:
    blob = path.read_bytes()
    if not blob.startswith(MAGIC):
        raise ValueError(f"checkpoint {path} is damaged or not a jnas checkpoint (no {MAGIC[:-1].decode()} header; "
                         f"{len(blob)} bytes)")
    digest, _, payload = blob[len(MAGIC):].partition(b"\n")
    if hashlib.sha256(payload).hexdigest().encode() != digest:
        raise ValueError(f"checkpoint {path} is damaged: its checksum does not match its contents "
                         f"({len(payload)} bytes of payload)")
    return flax.serialization.msgpack_restore(payload)


def restore(path: str | Path, target: Any) -> tuple[Any, dict] | None:
    """``(state shaped like target, meta)`` from ``path``, or None when there is no checkpoint.

    A damaged ``path`` falls back to ``path.prev`` with a warning; ValueError (naming both
    files) when neither is good."""
    path = Path(path)
    candidates = [p for p in (path, _prev(path)) if p.exists()]
    if not candidates:
        return None
    errors = []
    for p in candidates:
        try:
            saved = _read(p)
        except ValueError as e:
            errors.append(str(e))
            continue
        if errors:
            warnings.warn(f"{errors[0]}; resuming from the previous checkpoint {p}", stacklevel=2)
        return flax.serialization.from_state_dict(target, saved["state"]), dict(saved.get("meta", {}))
    raise ValueError("no usable checkpoint: " + "; ".join(errors) + ". Delete them to start over")
