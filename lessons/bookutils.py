"""Small helpers shared by the lessons: quick mode, reading the reference-run artifacts, visible notes.

The lessons teach the package (:mod:`visiondl_keras`); this module only does book chores:

* ``QUICK`` is ``True`` unless the environment variable ``VISIONDL_QUICK`` is ``"0"``. Quick mode
  (the default, and what CI runs) uses stratified subsets and few epochs so that a lesson executes
  in about a minute on two CPU cores; ``VISIONDL_QUICK=0`` runs the full version.
* ``artifact("runs/scratch_reference/metrics.json")`` finds a file under ``artifacts/`` of the
  repository; :func:`show_image`, :func:`load_json` and :func:`load_csv` display a visible note
  instead of failing when a reference artifact has not been produced yet, so the book always builds.
* :func:`lesson_model` returns the shipped reference checkpoint, or (when it is absent) a small model
  trained on the spot with :func:`visiondl_keras.training.scratch.train`.

Example:
    >>> import bookutils as bk
    >>> bk.QUICK in (True, False)
    True
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from pathlib import Path

# Quieter TensorFlow logs in executed lessons (set before Keras is imported): no C++ info lines, and no
# "tf.function retracing" warnings when several small models are trained and evaluated in one lesson.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
logging.getLogger("tensorflow").setLevel(logging.ERROR)
if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow":
    try:  # TensorFlow resets its logger's level on import; set it again afterwards
        import tensorflow as _tf

        _tf.get_logger().setLevel(logging.ERROR)
    except ImportError:
        pass

# tqdm.auto warns "IProgress not found" in kernels without ipywidgets; the package's bars are off in lessons.
warnings.filterwarnings("ignore", message="IProgress not found")

QUICK: bool = os.environ.get("VISIONDL_QUICK", "1").strip() != "0"


def _find_root() -> Path:
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "visiondl_keras").is_dir():
            return p
    return Path(__file__).resolve().parent.parent


ROOT: Path = _find_root()
ARTIFACTS: Path = ROOT / "artifacts"
# The shipped model: the fast recipe (preset 94), its run files and its checkpoint.
REFERENCE_NAME: str = "scratch_airbench94"
REFERENCE_RUN: Path = ARTIFACTS / "runs" / REFERENCE_NAME
REFERENCE_CHECKPOINT: Path = ARTIFACTS / "checkpoints" / f"{REFERENCE_NAME}.keras"
# The ResNet-9 / OneCycle recipe's reference run (the documented alternative; lesson 3).
RESNET9_RUN: Path = ARTIFACTS / "runs" / "scratch_reference"

_HOW_TO = {
    "runs/scratch_airbench94": "make reference",
    "runs/scratch_reference": "python -m visiondl_keras train --preset resnet9 --run-dir runs/resnet9",
    "checkpoints": "make reference",
}


def _display(obj):
    from IPython.display import display

    display(obj)


def note(text: str, kind: str = "note"):
    """Show a MyST admonition (``note``, ``tip``, ``warning``) in the executed lesson."""
    from IPython.display import Markdown

    _display(Markdown(f":::{{{kind}}}\n{text}\n:::"))


def mode_banner(quick_desc: str, full_desc: str):
    """Say which version of the lesson is running, and how to run the other one."""
    if QUICK:
        note(f"**Quick mode** (`VISIONDL_QUICK=1`, the default): {quick_desc}. "
             f"Set `VISIONDL_QUICK=0` for the full version: {full_desc}.", "tip")
    else:
        note(f"**Full mode** (`VISIONDL_QUICK=0`): {full_desc}.", "tip")


def artifact(relpath: str) -> Path | None:
    """The path of ``artifacts/<relpath>`` when it exists, else ``None``."""
    p = ARTIFACTS / relpath
    return p if p.exists() else None


def _missing(relpath: str, how: str | None = None):
    if how is None:
        how = next((v for k, v in _HOW_TO.items() if relpath.startswith(k)), "make reference")
    note(f"The reference artifact `artifacts/{relpath}` is not committed yet, so its result is not shown "
         f"here. Produce it with `{how}` and rebuild the book.", "warning")


def load_json(relpath: str, how: str | None = None):
    """Read ``artifacts/<relpath>`` (JSON); show a note and return ``None`` when it is absent."""
    from visiondl_keras.io import read_json

    p = artifact(relpath)
    if p is None:
        _missing(relpath, how)
        return None
    return read_json(p)


def load_csv(relpath: str, how: str | None = None):
    """Read ``artifacts/<relpath>`` (CSV) as a pandas DataFrame, or show a note and return ``None``."""
    import pandas as pd

    p = artifact(relpath)
    if p is None:
        _missing(relpath, how)
        return None
    return pd.read_csv(p)


def show_image(relpath: str, how: str | None = None, width: int | None = None) -> None:
    """Display ``artifacts/<relpath>`` (PNG), or a note saying how to produce it."""
    from IPython.display import Image

    p = artifact(relpath)
    if p is None:
        _missing(relpath, how)
        return
    _display(Image(filename=str(p), width=width))


def find_artifacts(pattern: str) -> list[Path]:
    """Files under ``artifacts/`` matching a glob pattern, sorted."""
    return sorted(ARTIFACTS.glob(pattern))


def measured_on(metrics: dict | None) -> str:
    """One sentence naming the data a reference number was measured on (from ``metrics["data"]``)."""
    if not metrics:
        return ""
    data = metrics.get("data") or {}
    source = str(data.get("source", ""))
    desc = data.get("description") or (
        "the JPEG q75 mirror of CIFAR-10 (not bit-identical to the official release)" if "jpeg" in source.lower()
        else f"CIFAR-10 ({source or 'source not recorded'})")
    parts = [f"Measured on {desc}"]
    if data.get("n_test"):
        parts.append(f"{data['n_test']:,} test images")
    if data.get("fingerprint") and str(data["fingerprint"])[:12] not in desc:
        parts.append(f"dataset fingerprint `{str(data['fingerprint'])[:12]}`")
    return ", ".join(parts) + "."


def splits(limit: int | None = 5000, test_limit: int | None = 2000, val_size: int = 5000, seed: int = 0,
           full_limit: int | None = None, full_test_limit: int | None = None):
    """Train/validation/test splits of CIFAR-10 through the package.

    In quick mode, ``limit`` training images and ``test_limit`` test images (stratified); in full
    mode ``full_limit`` / ``full_test_limit`` (default: everything, 45,000 / 5,000 / 10,000).
    """
    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.data.splits import train_val_split

    ds = load_cifar10(progress=False)
    if QUICK:
        return train_val_split(ds, val_size=val_size, seed=seed, limit=limit, test_limit=test_limit)
    return train_val_split(ds, val_size=val_size, seed=seed, limit=full_limit, test_limit=full_test_limit)


def lesson_model(quick_epochs: int = 2, limit: int = 3000):
    """The model that lessons 05-09 analyse, and a sentence describing where it comes from.

    The shipped reference checkpoint ``artifacts/checkpoints/scratch_airbench94.keras`` when it is in
    the repository; otherwise a small ResNet-9 trained here with :func:`visiondl_keras.training.scratch.train`
    (quick configuration), with a visible note.

    Returns:
        ``(model, checkpoint_path, description)``.
    """
    from visiondl_keras.models import load_checkpoint

    if REFERENCE_CHECKPOINT.is_file():
        model = load_checkpoint(REFERENCE_CHECKPOINT)
        desc = f"the reference checkpoint `artifacts/checkpoints/{REFERENCE_NAME}.keras`"
        return model, REFERENCE_CHECKPOINT, desc
    from visiondl_keras.training.config import quick_config
    from visiondl_keras.training.scratch import train
    note(f"The reference checkpoint `artifacts/checkpoints/{REFERENCE_NAME}.keras` is not committed yet "
         "(produce it with `make reference`). This lesson trains a small stand-in model instead, so its "
         "numbers are far below the reference model's.", "warning")
    # Shared by lessons 5-9 (git-ignored): the first lesson that needs it trains it, the others reuse it
    # (train() returns a completed run with the same configuration as it is).
    run_dir = ROOT / "runs" / "lessons" / "standin"
    t0 = time.perf_counter()
    metrics = train(quick_config(epochs=quick_epochs, limit=limit, val_size=5000, test_limit=1000), run_dir,
                    progress=False, log=lambda *a: None)
    model = load_checkpoint(run_dir / "best.keras")
    desc = (f"a stand-in ResNet-9 (width 16) trained for {quick_epochs} epochs on {limit:,} images "
            f"({metrics['train_time_s']:.0f} s of training; loaded in {time.perf_counter() - t0:.0f} s), "
            f"test accuracy {metrics['test_accuracy']:.3f} on {metrics['data']['n_test']:,} test images")
    return model, run_dir / "best.keras", desc


def table(rows, columns=None, index=None, floatfmt: str = "{:.4f}"):
    """A pandas DataFrame of ``rows`` (dicts) for display, floats formatted."""
    import pandas as pd

    df = pd.DataFrame(rows, columns=columns)
    if index is not None:
        df = df.set_index(index)
    return df.style.format(floatfmt, subset=df.select_dtypes("float").columns) if len(df) else df


def run_dir(name: str) -> Path:
    """A fresh run directory ``runs/lessons/<name>`` (git-ignored), emptied so the lesson trains live."""
    import shutil

    d = ROOT / "runs" / "lessons" / name
    if d.exists():
        shutil.rmtree(d)
    d.parent.mkdir(parents=True, exist_ok=True)
    return d
