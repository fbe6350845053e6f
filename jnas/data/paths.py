"""Where jnas looks for data: a ``data_dir`` argument (experiments fill it from
``--data-dir``), then the ``JNAS_DATA`` environment variable."""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "JNAS_DATA"


def find_data_file(relpath: str, data_dir: str | os.PathLike | None = None, *, how_to_get: str) -> Path:
    """Return the first existing ``<root>/relpath`` over the data roots, or raise.

    Args:
      relpath: path of the file inside a data root, e.g. ``"nb201/nb201_cifar10.csv.gz"``.
      data_dir: root given by the caller (function argument or ``--data-dir``).
      how_to_get: a sentence on where the file officially comes from.
    Raises:
      FileNotFoundError: naming the file, every place searched, and how to obtain it.
    """
    searched = []
    roots = [("argument / --data-dir", data_dir), (f"${ENV_VAR}", os.environ.get(ENV_VAR))]
    for label, root in roots:
        if root is None or str(root) == "":
            searched.append(f"  {label}: not set")
            continue
        path = Path(root).expanduser() / relpath
        if path.is_file():
            return path
        searched.append(f"  {label}: {path} (not found)")
    raise FileNotFoundError(
        f"jnas could not find data file {relpath!r}. Searched:\n" + "\n".join(searched) + f"\n{how_to_get}\n"
        f"Pass data_dir=..., use --data-dir DIR, or set {ENV_VAR}=DIR so that DIR/{relpath} exists."
    )
