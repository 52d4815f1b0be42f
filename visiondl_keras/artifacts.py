"""Atomic writes of run artifacts (JSON, CSV, text, bytes).

A reader never sees a half-written file: each write goes to a temporary file in the
same directory and is then renamed over the target (``os.replace`` is atomic on POSIX
and Windows).
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _default(obj: Any):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serialisable")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path.

    Args:
        path: target file; its parent directories are created.
        data: the bytes to write.

    Returns:
        The target as a ``Path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; artifacts get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically; numpy scalars and arrays are converted.

    Example:
        >>> write_json("/tmp/m.json", {"accuracy": np.float32(0.5)})  # doctest: +SKIP
    """
    return atomic_write_text(path, json.dumps(obj, indent=2, default=_default, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def write_csv(path: str | os.PathLike, rows: list[dict], fieldnames: list[str] | None = None) -> Path:
    """Write a list of dicts as CSV atomically (columns: ``fieldnames`` or the union of keys in order)."""
    if fieldnames is None:
        fieldnames = []
        for row in rows:
            for key in row:
                if key not in fieldnames:
                    fieldnames.append(key)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fieldnames, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _default(v) if isinstance(v, (np.generic, np.ndarray)) else v for k, v in row.items()})
    return atomic_write_text(path, buf.getvalue())


def read_csv(path: str | os.PathLike) -> list[dict]:
    """Read a CSV written by :func:`write_csv`; numeric fields are converted to float."""
    out = []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            conv = {}
            for k, v in row.items():
                try:
                    conv[k] = float(v)
                except (TypeError, ValueError):
                    conv[k] = v
            out.append(conv)
    return out


CHECKPOINT_NAMES = ("best.keras", "model.keras", "last.keras")


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The ``.keras`` file that ``path`` names: ``path`` itself, or a run directory's ``best.keras``,
    ``model.keras`` or ``last.keras`` (the first that exists).

    Raises:
        ModelError: ``path`` is a folder without any of those checkpoints.
    """
    from .errors import ModelError

    path = Path(path)
    if not path.is_dir():
        return path
    found = next((path / n for n in CHECKPOINT_NAMES if (path / n).is_file()), None)
    if found is None:
        raise ModelError(f"{path}: folder has no {', '.join(CHECKPOINT_NAMES)} checkpoint; pass the .keras file.")
    return found
