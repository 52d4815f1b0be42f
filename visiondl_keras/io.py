"""Files: atomic writes (JSON, CSV, text, bytes), file hashing and the ``.npy`` array cache.

A reader never sees a half-written file: each write goes to a temporary file in the
same directory and is then renamed over the target (``os.replace`` is atomic on POSIX
and Windows).
"""

from __future__ import annotations

import csv
import hashlib
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
        >>> write_json("runs/m.json", {"accuracy": np.float32(0.5)})  # doctest: +SKIP
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


def file_sha256(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes, as hex (identifies an archive, a checkpoint, an export)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_npy_cache(folder: str | os.PathLike, arrays: dict[str, np.ndarray], meta: dict) -> Path:
    """Write ``folder/<name>.npy`` for each array and then ``folder/meta.json`` (each atomically).

    ``meta.json`` is written last, so a cache entry whose ``meta.json`` exists is complete: a run
    killed while writing leaves an entry :func:`load_npy_cache` ignores.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, array in arrays.items():
        tmp = folder / f".{name}.tmp.npy"
        np.save(tmp, array, allow_pickle=False)
        os.replace(tmp, folder / f"{name}.npy")
    write_json(folder / "meta.json", meta)
    return folder


def load_npy_cache(folder: str | os.PathLike, names, check=None) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and ``meta.json`` that :func:`save_npy_cache` wrote, or None when the entry is
    missing, incomplete, unreadable or ``check(meta)`` is false (a stale cache is rebuilt, never an error)."""
    folder = Path(folder)
    meta_path = folder / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
        if check is not None and not check(meta):
            return None
        arrays = {n: np.load(folder / f"{n}.npy", allow_pickle=False) for n in names}
    except (OSError, ValueError, KeyError):
        return None
    return arrays, meta
