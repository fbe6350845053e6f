"""The one way jnas writes results: append-only JSON-lines records with resume by key, and
whole JSON files written atomically.

Every long run (search drivers, multi-fidelity evaluations, proxy scoring blocks, one-shot
steps, experiment phases) appends one record per finished unit to a :class:`Records` file
and, on restart, skips the units whose keys it already holds. A record is flushed and
synced before the next unit starts, so a kill loses at most the unit in progress. A last
line cut short by a kill (no newline, or not JSON) is reported by file and line and dropped,
and its unit is redone.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator


def _finite(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None (strict JSON has no NaN or infinity)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any, indent: int | None = 2) -> None:
    """Write ``obj`` as strict JSON (non-finite floats become null) to ``path`` atomically:
    a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(_finite(obj), indent=indent, allow_nan=False) + "\n")
    os.replace(tmp, path)


def read_json(path: str | Path) -> Any:
    """The JSON in ``path``; ValueError naming the file and position when it is damaged."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON (line {e.lineno}, column {e.colno}: {e.msg}); "
                         "delete it to recompute it") from None


class Records:
    """Append-only records in a JSON-lines file, one dict per line.

    Args:
      path: the ``.jsonl`` file (created on the first append).
      key: what identifies a record's unit of work, for :meth:`done` (default: the whole
        record is not keyed; use :meth:`read`).
    """

    def __init__(self, path: str | Path, key: Callable[[dict], Hashable] | None = None):
        self.path = Path(path)
        self.key = key

    def read(self) -> list[dict]:
        """Every complete record in order. A damaged last record (a torn write: no newline at
        its end, or not JSON) is reported with the file and line, cut from the file and
        dropped; a damaged record before the last raises ValueError naming the file and line."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")  # the piece after the last newline is lines[-1]
        records, kept = [], 0
        for i, line in enumerate(lines):
            final = i == len(lines) - 1 or (i == len(lines) - 2 and not lines[-1])
            if i == len(lines) - 1 and not line:
                break
            try:
                if i == len(lines) - 1:
                    raise ValueError("no newline at its end: the write was cut short")
                rec = json.loads(line) if line.strip() else None
            except ValueError as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                if not final:
                    raise ValueError(f"{self.path}, line {i + 1}, is not a JSON record ({e}); the file is damaged "
                                     "before its end: move it away to start over") from None
                warnings.warn(f"{self.path}, line {i + 1}: dropped a damaged last record ({e}); its work is redone",
                              stacklevel=2)
                with open(self.path, "r+b") as f:  # cut it so the next append starts on a clean line
                    f.truncate(kept)
                break
            if rec is not None:
                records.append(rec)
            kept += len(line) + 1
        return records

    def done(self) -> dict[Hashable, dict]:
        """The records by key (a later record with the same key replaces an earlier one)."""
        if self.key is None:
            raise ValueError(f"Records({self.path}) has no key function; pass key= to use done()")
        return {self.key(r): r for r in self.read()}

    def append(self, record: dict) -> None:
        """Append one record and make it durable (flush and fsync) before returning. A torn
        last line left by a killed writer is reported and cut first (as :meth:`read` does), so
        a writer that resumes without reading never glues its record onto the torn one."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists() and self.path.stat().st_size:
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                torn = f.read(1) != b"\n"
            if torn:
                self.read()
        line = json.dumps(_finite(record), allow_nan=False)
        with open(self.path, "a") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def __iter__(self) -> Iterator[dict]:
        return iter(self.read())
