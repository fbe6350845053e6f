"""The one way jnas checkpoints a pytree (trainer state, supernet and search state): an orbax
checkpoint folder, written atomically, the previous checkpoint kept beside the newest.

``path`` is an orbax ``CheckpointManager`` folder holding at most two numbered steps. Each step
stores the state (``StandardSave``: arrays with their sharding, so a state written on several
devices restores onto however many the target lives on) and a JSON item with the caller's
``meta``, the state's layout (key path, shape, dtype per leaf) and a SHA-256 of its values.

Orbax reads a checkpoint whose data bytes were overwritten without complaint (measured: a
flipped block restores as wrong numbers), so the digest is checked after every restore. A
damaged newest step (unreadable, or values that do not match their digest) falls back to the
previous step with a warning, so one bad write costs one unit of work, never the run. A
checkpoint of a different model (another layout) is refused with the differing leaves named.
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

KEEP = 2  # the newest step and the one before it


def _manager(path: Path) -> ocp.CheckpointManager:
    if path.is_file():
        raise ValueError(f"checkpoint {path} is a file, not an orbax checkpoint folder (a checkpoint written by jnas "
                         "before it used orbax, or another program's file); move or delete it to start over")
    options = ocp.CheckpointManagerOptions(max_to_keep=KEEP, enable_async_checkpointing=False, create=True)
    return ocp.CheckpointManager(path.absolute(), options=options)


def _leaves(state: Any) -> list[tuple[str, Any]]:
    return [(jax.tree_util.keystr(p), x) for p, x in jax.tree_util.tree_flatten_with_path(state)[0]]


def _layout(state: Any) -> list[list]:
    """[key path, shape, dtype] per leaf; python scalars by type name."""
    return [[k, list(np.shape(x)), str(getattr(x, "dtype", type(x).__name__))] for k, x in _leaves(state)]


def _digest(state: Any) -> str | None:
    """SHA-256 over every leaf's key path, dtype, shape and bytes, in tree order; None when a
    leaf is not all on this process (multi-host arrays: the check is skipped there)."""
    h = hashlib.sha256()
    for k, x in _leaves(state):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return None
        a = np.asarray(x)
        h.update(f"{k}|{a.dtype}|{a.shape}|".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save(path: str | Path, state: Any, **meta) -> None:
    """Write ``state`` (a pytree of arrays and scalars) and ``meta`` (JSON values, e.g.
    ``epoch=3``) as the newest step of the checkpoint folder ``path``; older steps but the
    previous one are deleted. Returns when the step is on disk."""
    path = Path(path)
    with _manager(path) as manager:
        step = (manager.latest_step() or 0) + 1
        info = {"meta": meta, "layout": _layout(state), "sha256": _digest(state)}
        manager.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), info=ocp.args.JsonSave(info)))
        manager.wait_until_finished()


def _mismatch(saved: list[list], expected: list[list]) -> str:
    saved_by, expected_by = ({k: (tuple(s), d) for k, s, d in layout} for layout in (saved, expected))
    parts = []
    if missing := [k for k in expected_by if k not in saved_by]:
        parts.append(f"missing from the checkpoint: {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else ""))
    if extra := [k for k in saved_by if k not in expected_by]:
        parts.append(f"not in the target: {', '.join(extra[:5])}" + (" ..." if len(extra) > 5 else ""))
    differ = [f"{k} saved {saved_by[k][0]} {saved_by[k][1]}, expected {s} {d}"
              for k, (s, d) in expected_by.items() if k in saved_by and saved_by[k] != (s, d)]
    if differ:
        parts.append("differing: " + "; ".join(differ[:5]) + (" ..." if len(differ) > 5 else ""))
    return ". ".join(parts)


class _Damaged(ValueError):
    """A checkpoint step that cannot be read back as it was written."""


def _restore_step(manager: ocp.CheckpointManager, step: int, target: Any, where: str) -> tuple[Any, dict]:
    try:
        info = manager.restore(step, args=ocp.args.Composite(info=ocp.args.JsonRestore()))["info"]
    except Exception as e:  # orbax/tensorstore raise many types for unreadable files
        raise _Damaged(f"checkpoint {where} is damaged: its JSON item cannot be read ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(info, dict) or not {"meta", "layout", "sha256"} <= set(info):
        raise _Damaged(f"checkpoint {where} is damaged: its JSON item lacks the meta, layout and digest jnas writes")
    if (diff := _mismatch(info["layout"], _layout(target))):
        raise ValueError(f"checkpoint {where} holds a different state than the one to restore ({diff}); "
                         "it was written by another model or configuration: use another folder or delete it to start over")
    try:
        state = manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))["state"]
    except Exception as e:
        raise _Damaged(f"checkpoint {where} is damaged: its arrays cannot be read ({type(e).__name__}: {str(e)[:200]})") from e
    if info["sha256"] is not None and (digest := _digest(state)) is not None and digest != info["sha256"]:
        raise _Damaged(f"checkpoint {where} is damaged: its values do not match their SHA-256")
    return state, dict(info["meta"])


def restore(path: str | Path, target: Any) -> tuple[Any, dict] | None:
    """``(state shaped and sharded like target, meta)`` from the newest good step of ``path``, or
    None when there is no checkpoint.

    Arrays land on ``target``'s shardings, whatever device count wrote them. A damaged newest
    step falls back to the previous one with a warning. Raises ValueError (naming the folder)
    when no step is good, or when the checkpoint's layout differs from ``target``'s."""
    path = Path(path)
    if not path.exists():
        return None
    with _manager(path) as manager:
        steps = sorted(manager.all_steps(), reverse=True)
        if not steps:
            return None
        errors = []
        for step in steps:
            try:
                state, meta = _restore_step(manager, step, target, f"{path} (step {step})")
            except _Damaged as e:
                errors.append(str(e))
                continue
            if errors:
                warnings.warn(f"{errors[0]}; resuming from the previous checkpoint, step {step}", stacklevel=2)
            return state, meta
    raise ValueError("no usable checkpoint: " + "; ".join(errors) + f". Delete {path} to start over")
