"""CIFAR-10 from the official release, a local folder, an image-folder tree or an archive.

The one entry point is :func:`load_cifar10`. It returns a :class:`Dataset` of uint8 NHWC
images and int64 labels, whatever the source:

* the official ``cifar-10-batches-py`` folder or ``cifar-10-python.tar.gz`` (Python pickles,
  read with a restricted unpickler that executes nothing);
* an image-folder tree ``train/<class>/*`` and ``test/<class>/*`` in any Pillow-readable format;
* a ``.tar.gz`` / ``.tgz`` / ``.tar`` / ``.zip`` archive of either, e.g. the offline JPEG mirror.

Archives are extracted once into a cache outside the repository and the decoded arrays are
cached as ``.npy`` files, so a second load takes well under two seconds. The cache lives in
``$VISIONDL_CACHE`` (default ``~/.cache/visiondl_keras``).

Then :func:`train_val_split` makes a seeded, stratified train/validation split (with an optional
stratified ``limit`` for quick modes) and computes the per-channel mean and std of the training
split.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from visiondl_keras.errors import DataError, UnsafePickleError
from visiondl_keras.io import file_sha256, load_npy_cache, save_npy_cache

CLASS_NAMES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
IMAGE_SHAPE = (32, 32, 3)
OFFICIAL_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
OFFICIAL_SHA256 = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
_CACHE_VERSION = 1

HOW_TO_PROVIDE = (
    "Provide CIFAR-10 in one of these ways: "
    "(1) set VISIONDL_DATA to the official cifar-10-batches-py folder, cifar-10-python.tar.gz, "
    "an image-folder tree with train/<class>/ and test/<class>/, or a .tar.gz/.zip of such a tree; "
    "(2) pass that path as load_cifar10(source=...) or --data; "
    "(3) put the official folder at ./data/cifar-10-batches-py; "
    "(4) keep the official release in Keras' cache ($KERAS_HOME/datasets, default ~/.keras/datasets); "
    "(5) connect to the internet so Keras can download the official release."
)


def is_jpeg_mirror(source: str) -> bool:
    """True when ``source`` names the JPEG-compressed mirror of CIFAR-10 (not bit-identical to the release)."""
    return "jpeg" in str(source).lower() or "jpg" in str(source).lower()


def data_kind(source: str) -> str:
    """What the data are, in words: ``"JPEG q75 mirror of CIFAR-10"`` or ``"CIFAR-10"``."""
    return "JPEG q75 mirror of CIFAR-10" if is_jpeg_mirror(source) else "CIFAR-10"


def source_name(source: str) -> str:
    """The file or folder name of a data source (what run files record: the fingerprint identifies the
    exact data, and a full path would only describe one machine)."""
    return Path(str(source)).name or str(source)


def describe_data(data) -> dict:
    """The dataset description every run and report stores (the ``"data"`` entry of ``metrics.json``).

    Args:
        data: a :class:`Dataset` or :class:`Splits`.

    Returns:
        ``{"source", "fingerprint", "is_jpeg_mirror", "description", "n_train", "n_val", "n_test"}``
        (``n_val`` is 0 for a Dataset).
    """
    jpeg = is_jpeg_mirror(data.source)
    return {
        "source": source_name(data.source),
        "fingerprint": data.fingerprint,
        "is_jpeg_mirror": jpeg,
        "description": data_kind(data.source) + (" (not bit-identical to the official release)" if jpeg else ""),
        "n_train": int(len(data.y_train)),
        "n_val": int(len(getattr(data, "y_val", ()))),
        "n_test": int(len(data.y_test)),
    }


@dataclass
class Dataset:
    """CIFAR-10 as numpy arrays.

    Attributes:
        x_train: uint8 array (50000, 32, 32, 3) for the full release.
        y_train: int64 labels (50000,).
        x_test: uint8 array (10000, 32, 32, 3).
        y_test: int64 labels (10000,).
        class_names: the label names, index = label.
        source: where the data came from (a path or ``"keras-download"``).
        fingerprint: sha256 over the four arrays; identifies the exact data in run metadata.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...] = CLASS_NAMES
    source: str = ""
    fingerprint: str = ""

    @property
    def is_jpeg_mirror(self) -> bool:
        """True when the source is the JPEG-compressed mirror (not bit-identical to the release)."""
        return is_jpeg_mirror(self.source)

    def describe(self) -> str:
        """One line naming the data, for logs, tables and the model card."""
        kind = data_kind(self.source)
        return (
            f"{kind} ({len(self.x_train)} train / {len(self.x_test)} test images) from {source_name(self.source)}, "
            f"fingerprint {self.fingerprint[:12]}"
        )


def fingerprint_arrays(*arrays: np.ndarray) -> str:
    """sha256 over the shapes, dtypes and bytes of ``arrays`` (order matters)."""
    h = hashlib.sha256()
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(f"{arr.dtype.str}{arr.shape}".encode())
        h.update(memoryview(arr).cast("B"))
    return h.hexdigest()


def cache_dir() -> Path:
    """The cache folder (``$VISIONDL_CACHE``, default ``~/.cache/visiondl_keras``)."""
    root = os.environ.get("VISIONDL_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "visiondl_keras")
    return Path(root)


def _keras_home() -> Path:
    return Path(os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras"))


# --------------------------------------------------------------------------------------------
# Restricted unpickling of the official batches
# --------------------------------------------------------------------------------------------

_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("builtins", "bytes"),
    ("builtins", "bytearray"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals the official CIFAR-10 batches contain."""

    def __init__(self, file, filename: str):
        super().__init__(file, encoding="bytes")
        self._filename = filename

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"{self._filename}: refusing to load {module}.{name}; an official CIFAR-10 batch contains only "
            "numpy arrays, lists, bytes and strings. Re-download the release from the official site."
        )


def safe_load_pickle(path: str | os.PathLike):
    """Load a CIFAR-10 batch pickle without executing anything it asks for.

    Args:
        path: a file such as ``data_batch_1``.

    Returns:
        The unpickled object (a dict with bytes keys for the official batches).

    Raises:
        UnsafePickleError: the pickle references a callable outside numpy's array reconstruction.
        DataError: the file is missing or not a valid pickle.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _RestrictedUnpickler(fh, str(path)).load()
    except UnsafePickleError:
        raise
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found in the CIFAR-10 batches folder.") from exc
    except Exception as exc:
        raise DataError(f"{path}: not a readable CIFAR-10 batch pickle ({type(exc).__name__}: {exc}).") from exc


def _get(d: dict, key: str):
    for k in (key.encode(), key):
        if k in d:
            return d[k]
    raise KeyError(key)


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    obj = safe_load_pickle(path)
    try:
        data = np.asarray(_get(obj, "data"))
        labels = np.asarray(_get(obj, "labels"), dtype=np.int64)
    except (KeyError, TypeError) as exc:
        raise DataError(f"{path}: a CIFAR-10 batch must be a dict with 'data' and 'labels'.") from exc
    if data.ndim != 2 or data.shape[1] != 3072 or data.dtype != np.uint8:
        raise DataError(
            f"{path}: 'data' has shape {data.shape} and dtype {data.dtype}; expected (N, 3072) uint8 "
            "(32x32 RGB, channel-first)."
        )
    if labels.shape != (data.shape[0],):
        raise DataError(f"{path}: {data.shape[0]} images but {labels.shape[0]} labels.")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise DataError(f"{path}: labels must lie in 0..9, found {labels.min()}..{labels.max()}.")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy(), labels


def _is_batches_dir(path: Path) -> bool:
    return (path / "data_batch_1").is_file() or (path / "test_batch").is_file()


def _load_batches_dir(path: Path) -> Dataset:
    xs, ys = [], []
    for i in range(1, 6):
        x, y = _read_batch(path / f"data_batch_{i}")
        xs.append(x)
        ys.append(y)
    x_test, y_test = _read_batch(path / "test_batch")
    class_names = CLASS_NAMES
    meta = path / "batches.meta"
    if meta.is_file():
        try:
            names = _get(safe_load_pickle(meta), "label_names")
            class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
        except KeyError:
            pass
    return Dataset(np.concatenate(xs), np.concatenate(ys), x_test, y_test, class_names, str(path))


# --------------------------------------------------------------------------------------------
# Image-folder trees
# --------------------------------------------------------------------------------------------


def _find_tree_root(path: Path) -> Path | None:
    """The folder holding ``train/`` and ``test/`` (the path itself or a single child)."""
    if (path / "train").is_dir() and (path / "test").is_dir():
        return path
    children = [c for c in path.iterdir() if c.is_dir() and not c.name.startswith((".", "__"))]
    if len(children) == 1:
        return _find_tree_root(children[0])
    return None


def _find_batches_root(path: Path) -> Path | None:
    if _is_batches_dir(path):
        return path
    if (path / "cifar-10-batches-py").is_dir():
        return path / "cifar-10-batches-py"
    return None


def _class_order(names: list[str]) -> tuple[str, ...]:
    if set(names) == set(CLASS_NAMES):
        return CLASS_NAMES
    return tuple(sorted(names))


def _list_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


def _decode_split(root: Path, split: str, class_names: tuple[str, ...], progress: bool) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image, UnidentifiedImageError
    from tqdm.auto import tqdm

    files: list[tuple[Path, int]] = []
    for label, name in enumerate(class_names):
        folder = root / split / name
        if not folder.is_dir():
            raise DataError(f"{folder}: missing class folder; {split}/ must hold one folder per class {list(class_names)}.")
        imgs = _list_images(folder)
        if not imgs:
            raise DataError(f"{folder}: no images found (extensions {', '.join(IMAGE_EXTENSIONS)}).")
        files.extend((p, label) for p in imgs)
    x = np.empty((len(files), *IMAGE_SHAPE), dtype=np.uint8)
    y = np.empty((len(files),), dtype=np.int64)
    for i, (p, label) in enumerate(
        tqdm(files, desc=f"decoding {split} images", unit="img", disable=not progress, mininterval=1.0)
    ):
        try:
            with Image.open(p) as im:
                im.load()
                if im.size != (32, 32):
                    raise DataError(f"{p}: image is {im.size[0]}x{im.size[1]}, expected 32x32 (CIFAR-10).")
                x[i] = np.asarray(im.convert("RGB"), dtype=np.uint8)
        except DataError:
            raise
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{p}: not a readable image ({exc}).") from exc
        y[i] = label
    return x, y


def _load_tree(root: Path, progress: bool) -> Dataset:
    train_names = sorted(c.name for c in (root / "train").iterdir() if c.is_dir())
    test_names = sorted(c.name for c in (root / "test").iterdir() if c.is_dir())
    if not train_names:
        raise DataError(f"{root / 'train'}: no class folders; expected train/<class>/ image folders.")
    missing = sorted(set(train_names) ^ set(test_names))
    if missing:
        where = [f"{'test' if n in train_names else 'train'}/{n}" for n in missing]
        raise DataError(f"{root}: missing class folders {where}; train/ and test/ must hold the same classes.")
    class_names = _class_order(train_names)
    x_train, y_train = _decode_split(root, "train", class_names, progress)
    x_test, y_test = _decode_split(root, "test", class_names, progress)
    return Dataset(x_train, y_train, x_test, y_test, class_names, str(root))


# --------------------------------------------------------------------------------------------
# Archives and the array cache
# --------------------------------------------------------------------------------------------


def _tree_key(path: Path) -> str:
    """A cheap key for a folder: relative paths, sizes and modification times of its files."""
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(f"{p.relative_to(path)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _is_archive(path: Path) -> bool:
    name = path.name.lower()
    return name.endswith((".tar.gz", ".tgz", ".tar", ".zip", ".tar.bz2", ".tar.xz"))


def _extract_archive(path: Path, dest: Path) -> None:
    """Extract ``path`` into ``dest`` (created atomically); refuses members escaping ``dest``."""
    if dest.is_dir():
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest.parent))
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    target = (tmp / name).resolve()
                    if not str(target).startswith(str(tmp.resolve())):
                        raise DataError(f"{path}: archive member {name!r} would be written outside the cache.")
                zf.extractall(tmp)
        else:
            with tarfile.open(path) as tf:
                members = []
                for m in tf.getmembers():
                    target = (tmp / m.name).resolve()
                    if not str(target).startswith(str(tmp.resolve())) or m.issym() or m.islnk() or m.isdev():
                        raise DataError(f"{path}: archive member {m.name!r} is not a plain file inside the archive.")
                    members.append(m)
                tf.extractall(tmp, members=members)
        os.replace(tmp, dest)
    except DataError:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError) as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise DataError(f"{path}: corrupt or unreadable archive ({type(exc).__name__}: {exc}); download it again.") from exc


_ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test")


def _cache_load(folder: Path) -> Dataset | None:
    entry = load_npy_cache(folder, _ARRAY_NAMES, check=lambda meta: meta.get("version") == _CACHE_VERSION)
    if entry is None:
        return None
    arrays, meta = entry
    return Dataset(*(arrays[n] for n in _ARRAY_NAMES), class_names=tuple(meta["class_names"]), source=meta["source"],
                   fingerprint=meta["fingerprint"])


def _cache_save(folder: Path, ds: Dataset) -> None:
    save_npy_cache(folder, {n: getattr(ds, n) for n in _ARRAY_NAMES},
                   {"version": _CACHE_VERSION, "class_names": list(ds.class_names), "source": ds.source,
                    "fingerprint": ds.fingerprint})


def _validate(ds: Dataset) -> Dataset:
    for split in ("train", "test"):
        x, y = getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}")
        if x.ndim != 4 or x.shape[1:] != IMAGE_SHAPE or x.dtype != np.uint8:
            raise DataError(f"{ds.source}: {split} images have shape {x.shape} ({x.dtype}); expected (N, 32, 32, 3) uint8.")
        if y.shape != (x.shape[0],):
            raise DataError(f"{ds.source}: {x.shape[0]} {split} images but {y.shape[0]} labels.")
    ds.y_train = ds.y_train.astype(np.int64, copy=False)
    ds.y_test = ds.y_test.astype(np.int64, copy=False)
    ds.class_names = tuple(ds.class_names)
    if not ds.fingerprint:
        ds.fingerprint = fingerprint_arrays(ds.x_train, ds.y_train, ds.x_test, ds.y_test)
    return ds


def _load_path(path: Path, progress: bool) -> Dataset:
    if not path.exists():
        raise DataError(f"{path}: no such file or folder. {HOW_TO_PROVIDE}")
    if path.is_file():
        if not _is_archive(path):
            raise DataError(
                f"{path}: not a CIFAR-10 source; expected a folder or a .tar.gz/.tgz/.tar/.zip archive."
            )
        key = file_sha256(path)
        arrays_dir = cache_dir() / "arrays" / key[:16]
        cached = _cache_load(arrays_dir)
        if cached is not None:
            cached.source = str(path)
            return cached
        extracted = cache_dir() / "extracted" / key[:16]
        _extract_archive(path, extracted)
        inner = _find_batches_root(extracted) or _find_tree_root(extracted)
        if inner is None:
            raise DataError(
                f"{path}: archive holds neither cifar-10-batches-py nor an image tree with train/ and test/ folders."
            )
        ds = _load_batches_dir(inner) if _is_batches_dir(inner) else _load_tree(inner, progress)
        ds.source = str(path)
        ds = _validate(ds)
        _cache_save(arrays_dir, ds)
        return ds
    batches = _find_batches_root(path)
    if batches is not None:
        ds = _load_batches_dir(batches)
        ds.source = str(path)
        return _validate(ds)
    root = _find_tree_root(path)
    if root is None:
        raise DataError(
            f"{path}: folder holds neither the official batches (data_batch_1..5, test_batch) "
            "nor an image tree with train/<class>/ and test/<class>/ folders."
        )
    arrays_dir = cache_dir() / "arrays" / ("tree-" + _tree_key(root)[:16])
    cached = _cache_load(arrays_dir)
    if cached is not None:
        cached.source = str(path)
        return cached
    ds = _load_tree(root, progress)
    ds.source = str(path)
    ds = _validate(ds)
    _cache_save(arrays_dir, ds)
    return ds


def _keras_cache_candidates() -> list[Path]:
    base = _keras_home() / "datasets"
    return [
        base / "cifar-10-batches-py-target" / "cifar-10-batches-py",
        base / "cifar-10-batches-py",
        base / "cifar-10-batches-py-target",
    ]


def download_failure_cause(exc: BaseException) -> str:
    """A plain-words cause of a failed download (no network, checksum, permission, disk, ...).

    Example:
        >>> download_failure_cause(PermissionError(13, "Permission denied", "/data"))
        'no permission to write the download (/data)'
    """
    chain, seen = [], exc
    while seen is not None and len(chain) < 5:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    text = " ".join(str(e) for e in chain).lower()
    for e in chain:
        if isinstance(e, PermissionError):
            return f"no permission to write the download ({getattr(e, 'filename', None) or e})"
        if isinstance(e, OSError) and getattr(e, "errno", None) == 28:
            return "no space left on the disk for the download"
    if "hash" in text or "checksum" in text or "corrupt" in text:
        return "the downloaded file failed its checksum (a truncated or altered download; delete it and retry)"
    network = ("urlopen", "name or service not known", "temporary failure in name resolution", "network is unreachable",
               "connection refused", "connection reset", "timed out", "no route to host", "nodename nor servname",
               "failed to resolve", "getaddrinfo")
    if any(n in text for n in network) or any(type(e).__name__ in ("URLError", "HTTPError", "ConnectionError",
                                                                   "TimeoutError", "gaierror") for e in chain):
        return f"no network connection to {OFFICIAL_URL.split('/')[2]} ({chain[-1]})"
    return f"{type(exc).__name__}: {exc}"


def _download_via_keras() -> Path:
    import keras

    try:
        path = keras.utils.get_file(
            fname="cifar-10-batches-py-target", origin=OFFICIAL_URL, extract=True, file_hash=OFFICIAL_SHA256
        )
    except Exception as exc:
        raise DataError(f"No CIFAR-10 data found and the download failed: {download_failure_cause(exc)}. "
                        f"{HOW_TO_PROVIDE}") from exc
    root = _find_batches_root(Path(path))
    if root is None:
        raise DataError(f"{path}: the downloaded release has no cifar-10-batches-py folder. {HOW_TO_PROVIDE}")
    return root


def load_cifar10(source: str | os.PathLike | None = None, progress: bool = True) -> Dataset:
    """Load CIFAR-10 as uint8 NHWC arrays, from wherever it is.

    Args:
        source: a folder or archive (see the module docstring). When None, look in order at
            ``$VISIONDL_DATA``; ``./data/cifar-10-batches-py``; Keras' cache
            (``$KERAS_HOME/datasets``); then download the official release through Keras
            (checksum verified).
        progress: show a progress bar while decoding image files.

    Returns:
        A :class:`Dataset`.

    Raises:
        DataError: no data found (the message lists every way to provide it), or the data is
            corrupt, has the wrong shapes or lacks class folders (the message names the file).

    Example:
        >>> ds = load_cifar10("../shared/data/cifar10-jpeg.tar.gz")  # doctest: +SKIP
        >>> ds.x_train.shape, ds.class_names[3]  # doctest: +SKIP
        ((50000, 32, 32, 3), 'cat')
    """
    if source is not None:
        return _load_path(Path(os.path.expanduser(str(source))), progress)
    env = os.environ.get("VISIONDL_DATA")
    if env:
        return _load_path(Path(os.path.expanduser(env)), progress)
    local = Path("data") / "cifar-10-batches-py"
    if local.is_dir():
        return _load_path(local, progress)
    for cand in _keras_cache_candidates():
        if _is_batches_dir(cand):
            return _load_path(cand, progress)
    return _load_path(_download_via_keras(), progress)
