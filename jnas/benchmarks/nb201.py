"""NAS-Bench-201 tabular benchmark (Dong & Yang, ICLR 2020; NATS-Bench tss, TPAMI 2021).

Reads ``<data>/nb201/nb201_cifar10.csv.gz`` (or any CSV with the same layout: an
``arch_str`` column with the official cell string and any number of numeric metric
columns named ``<dataset>_<metric>``). Every numeric column is kept, so a table carrying
more datasets (``c100_*``, ``in16_*``) or other metrics works unchanged.

The table is re-ordered by jnas's base-5 index, so ``table.columns[name][to_index(arch)]``
is a plain array gather that works inside ``jit``/``vmap``/``lax.scan``.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import struct
from jaxtyping import Array, Float, Int

from jnas.data.paths import find_data_file
from jnas.spaces import nb201 as space

DEFAULT_FILE = "nb201/nb201_cifar10.csv.gz"
SOURCE = (
    "NAS-Bench-201 results come from the NAS-Bench-201 / NATS-Bench release by X. Dong et al. "
    "(https://github.com/D-X-Y/NATS-Bench); export one row per cell with columns arch_str and "
    "<dataset>_<metric> values (see nb201/schema.json and PROVENANCE.md in the jnas data folder)."
)
# Columns describing the architecture itself rather than measuring it.
_STRUCTURAL = re.compile(r"^(arch_str|arch_index|op_.*)$")
# A negative latency or energy is HW-NAS-Bench's marker for "could not be measured".
_NONNEGATIVE = re.compile(r"(latency|energy)")


@struct.dataclass
class NB201Table:
    """All 15,625 cells, rows in base-5 index order; a pytree of device arrays.

    Attributes:
      columns: metric name -> ``(15625,)`` float32 array (NaN = missing).
      official_index: ``(15625,)`` NAS-Bench-201 ``arch_index`` of each row (-1 if absent).
      path: file the table was read from.
    """

    columns: dict[str, Array]
    official_index: Int[Array, "15625"]
    path: str = struct.field(pytree_node=False, default="")

    @property
    def metrics(self) -> list[str]:
        return list(self.columns)

    @property
    def datasets(self) -> list[str]:
        """Dataset prefixes present (the part of each metric name before the first '_')."""
        return sorted({m.split("_", 1)[0] for m in self.columns})

    def accuracy_columns(self) -> list[str]:
        """Metric columns that hold an accuracy (name contains ``acc``)."""
        return [m for m in self.columns if "acc" in m.split("_")]

    def column(self, name: str) -> Float[Array, "15625"]:
        """One metric column; ValueError listing the valid names if unknown."""
        if name not in self.columns:
            raise ValueError(f"unknown benchmark column {name!r}; {self.path} has {self.metrics}")
        return self.columns[name]

    def query(self, archs, name: str) -> Array:
        """Metric ``name`` for an architecture string, a ``(6,)`` array or an ``(n, 6)`` batch.

        Works under jit for array inputs (strings are parsed on the host).
        """
        col = self.column(name)
        if isinstance(archs, str):
            archs = space.from_string(archs)
        elif isinstance(archs, (list, tuple)) and archs and isinstance(archs[0], str):
            archs = jnp.stack([space.from_string(s) for s in archs])
        return col[space.to_index(archs)]


def load(data_dir: str | os.PathLike | None = None, relpath: str = DEFAULT_FILE) -> NB201Table:
    """Read a NAS-Bench-201 table.

    Args:
      data_dir: data root (argument / ``--data-dir``), else ``$JNAS_DATA``.
      relpath: file inside the root; ``.csv`` or ``.csv.gz``.
    Raises:
      FileNotFoundError: file missing (names where it looked and the official source).
      ValueError: malformed file (names the file and what is wrong).

    Example:
      >>> table = load("../shared/data")                      # doctest: +SKIP
      >>> float(table.query("|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|skip_connect~0|"
      ...                   "nor_conv_3x3~1|nor_conv_1x1~2|", "c10_test_acc_200ep"))  # doctest: +SKIP
      94.3733
    """
    path = find_data_file(relpath, data_dir, how_to_get=SOURCE)
    return read_table(path)


def read_table(path: str | os.PathLike) -> NB201Table:
    """Parse a table file (see :func:`load`)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise ValueError(f"cannot read NAS-Bench-201 table {path}: {err}") from err
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or "arch_str" not in header:
        raise ValueError(f"NAS-Bench-201 table {path} is malformed: no 'arch_str' column in header {header}")
    rows = list(reader)
    if len(rows) != space.SIZE:
        raise ValueError(f"NAS-Bench-201 table {path} is malformed: {len(rows)} rows, expected {space.SIZE}")
    col_of = {name: i for i, name in enumerate(header)}
    order = np.full(space.SIZE, -1, dtype=np.int64)  # base-5 index -> row
    for r, row in enumerate(rows):
        if len(row) != len(header):
            raise ValueError(f"NAS-Bench-201 table {path} is malformed: row {r + 2} has {len(row)} fields, header has {len(header)}")
        try:
            ops = space.parse_ops(row[col_of["arch_str"]])
        except ValueError as err:
            raise ValueError(f"NAS-Bench-201 table {path}, line {r + 2}: {err}") from None
        idx = int(np.dot(ops, space.POWERS))
        if order[idx] >= 0:
            raise ValueError(f"NAS-Bench-201 table {path} is malformed: cell {row[col_of['arch_str']]} appears twice")
        order[idx] = r
    columns: dict[str, Array] = {}
    for name, c in col_of.items():
        if _STRUCTURAL.match(name):
            continue
        values, bad = np.full(len(rows), np.nan), []
        for r, row in enumerate(rows):
            if row[c] != "":
                try:
                    values[r] = float(row[c])
                except ValueError:
                    bad.append(r)
        if bad and len(bad) == sum(row[c] != "" for row in rows):
            continue  # a text column carries no metric
        if bad:  # a numeric column with a damaged cell: name it rather than drop the column
            r = bad[0]
            raise ValueError(f"NAS-Bench-201 table {path}, line {r + 2}, column {name!r}: {rows[r][c]!r} is not a number "
                             f"({len(bad)} such cells in the column)")
        if _NONNEGATIVE.search(name):
            values[values < 0] = np.nan
        columns[name] = jnp.asarray(values[order], jnp.float32)
    if not columns:
        raise ValueError(f"NAS-Bench-201 table {path} has no numeric metric columns (header {header})")
    official = (
        np.array([int(rows[r][col_of["arch_index"]]) for r in order]) if "arch_index" in col_of else np.full(space.SIZE, -1)
    )
    return NB201Table(columns=columns, official_index=jnp.asarray(official, jnp.int32), path=str(path))
