"""Small helpers shared by the lessons: quick mode, reading the reference-run artifacts, visible notes.

The lessons teach the package (:mod:`visiondl_keras`); this module only does book chores:

* ``QUICK`` is ``True`` unless the environment variable ``VISIONDL_QUICK`` is ``"0"``. Quick mode
  (the default, and what CI runs) uses small budgets so that a lesson executes in a few minutes
  on two CPU cores; ``VISIONDL_QUICK=0`` runs the full version.
* ``artifact("runs/scratch_reference/metrics.json")`` finds a file under ``artifacts/`` of the
  repository; :func:`show_image`, :func:`load_json` and :func:`load_csv` display a visible note
  instead of failing when a reference artifact has not been produced yet, so the book always builds.
* :func:`lesson_model` returns the lessons' model: in quick mode the fast recipe of lesson 3 at half width,
  trained on the full training split once and shared by the lessons; in full mode the shipped checkpoint.
* :func:`glue` stores a computed value for a ``{glue:text}`` role, so that prose never types a measurement.
* A relative ``VISIONDL_DATA`` is resolved against the directory it was set in, then the repository root.

Example:
    >>> import bookutils as bk
    >>> bk.QUICK in (True, False)
    True
"""

from __future__ import annotations

import logging
import os
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


def _resolve_data_env(root: Path) -> str | None:
    """Make a relative ``VISIONDL_DATA`` absolute, whatever the working directory of the lesson.

    A relative path is tried against the directory the variable was set in (the shell's ``PWD``, which a
    kernel inherits), then against the repository root; the first that exists is written back.
    """
    value = os.environ.get("VISIONDL_DATA")
    if not value or Path(value).expanduser().is_absolute():
        return value
    for base in (os.environ.get("PWD"), root, Path.cwd()):
        if base and (Path(base) / value).exists():
            os.environ["VISIONDL_DATA"] = str((Path(base) / value).resolve())
            break
    return os.environ["VISIONDL_DATA"]


def _find_root() -> Path:
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "pyproject.toml").is_file() and (p / "visiondl_keras").is_dir():
            return p
    return Path(__file__).resolve().parent.parent


ROOT: Path = _find_root()
ARTIFACTS: Path = ROOT / "artifacts"
_resolve_data_env(ROOT)
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
           full_limit: int | None = None, full_test_limit: int | None = None, val_limit: int | None = None):
    """Train/validation/test splits of CIFAR-10 through the package.

    In quick mode, ``limit`` training images and ``test_limit`` test images (stratified; ``None`` keeps all)
    and a validation split reduced in proportion, or ``val_limit`` images of the full validation split when
    a lesson needs more (calibration, thresholds). In full mode ``full_limit`` / ``full_test_limit``
    (default: everything, 45,000 / 5,000 / 10,000). With the same ``seed`` and ``val_size`` the validation
    images are always held out of the lessons' model (:func:`lesson_model`).
    """
    import dataclasses

    from visiondl_keras.data.cifar10 import load_cifar10
    from visiondl_keras.data.splits import stratified_subset, train_val_split

    ds = load_cifar10(progress=False)
    if not QUICK:
        return train_val_split(ds, val_size=val_size, seed=seed, limit=full_limit, test_limit=full_test_limit)
    s = train_val_split(ds, val_size=val_size, seed=seed, limit=limit, test_limit=test_limit)
    if val_limit is not None and val_limit > len(s.y_val):
        full = train_val_split(ds, val_size=val_size, seed=seed, test_limit=test_limit)
        keep = stratified_subset(full.y_val, min(val_limit, len(full.y_val)), seed=seed)
        s = dataclasses.replace(s, x_val=full.x_val[keep], y_val=full.y_val[keep])
    return s


# The lessons' own model (quick mode): the fast recipe of lesson 3 at half width, for a few epochs on the full
# training split. Lesson 3 trains it live; lessons 5-9 reuse the same run directory (a completed run with the
# same configuration is read, not retrained), so the book trains it once.
# VISIONDL_LESSON_RUN names another run directory under runs/lessons/ (to keep two builds apart).
LESSON_RUN_NAME: str = os.environ.get("VISIONDL_LESSON_RUN", "fast_quick")
LESSON_RECIPE: dict = {"preset": "fast", "widths": [32, 128, 128], "epochs": 3}  # lesson 3 stays under 4 minutes


def lesson_config(epochs: int | None = None, limit: int | None = None):
    """The :class:`~visiondl_keras.training.config.TrainConfig` of the lessons' model (``LESSON_RECIPE``).

    ``preset_config("fast")`` (the fast recipe of lesson 3) at half width (``widths=[32, 128, 128]``) for
    ``epochs`` epochs (default ``LESSON_RECIPE["epochs"]``) on the full training split (or ``limit`` images).
    """
    from visiondl_keras.training.config import preset_config

    recipe = dict(LESSON_RECIPE)
    preset = recipe.pop("preset")
    if epochs is not None:
        recipe["epochs"] = epochs
    return preset_config(preset, limit=limit, **recipe)


def describe_run(metrics: dict, config) -> str:
    """One sentence on a trained run: network, budget, test accuracy and training time (all read from the run)."""
    d = metrics["data"]
    tta = (metrics.get("tta") or {}).get(str(config.tta_level), {}).get("test_accuracy")
    with_tta = f" ({tta:.1%} with test-time augmentation)" if tta is not None and config.tta_level else ""
    return (f"the fast recipe (lesson 3) at widths {config.widths}, trained for {config.epochs} epochs on "
            f"{d['n_train']:,} training images in {metrics['train_time_s'] / 60:.1f} min: test accuracy "
            f"{metrics['test_accuracy']:.1%}{with_tta} on {d['n_test']:,} test images of the {d.get('description', 'CIFAR-10')}")


def lesson_model(quick_epochs: int = LESSON_RECIPE["epochs"], limit: int | None = None):
    """The model that lessons 05-09 analyse, its checkpoint, and a sentence describing where it comes from.

    Quick mode: the fast recipe at half width (:func:`lesson_config`), trained on the full training split
    in ``runs/lessons/fast_quick`` (git-ignored). Lesson 3 trains it live; when that run is complete with
    the same configuration it is loaded, otherwise it is trained here first (a few minutes on two CPU cores).
    Full mode (``VISIONDL_QUICK=0``): the shipped reference checkpoint
    ``artifacts/checkpoints/scratch_airbench94.keras``, or, when it is absent, the ``94`` preset trained here.

    Returns:
        ``(model, checkpoint_path, description)``.
    """
    from visiondl_keras.errors import ConfigError
    from visiondl_keras.models import load_checkpoint
    from visiondl_keras.training.config import preset_config
    from visiondl_keras.training.scratch import train

    if not QUICK and REFERENCE_CHECKPOINT.is_file():
        model = load_checkpoint(REFERENCE_CHECKPOINT)
        ref = load_json(f"runs/{REFERENCE_NAME}/metrics.json")
        desc = f"the reference checkpoint `artifacts/checkpoints/{REFERENCE_NAME}.keras`"
        if ref:
            desc += f" (test accuracy {ref['test_accuracy']:.1%}; {measured_on(ref)})"
        return model, REFERENCE_CHECKPOINT, desc
    config = lesson_config(quick_epochs, limit) if QUICK else preset_config("94")
    run = ROOT / "runs" / "lessons" / (LESSON_RUN_NAME if QUICK else "fast_full")
    try:
        metrics = train(config, run, progress=False, log=lambda *a: None)
    except ConfigError:  # a run of an earlier lesson recipe: train this one instead
        import shutil

        shutil.rmtree(run)
        metrics = train(config, run, progress=False, log=lambda *a: None)
    return load_checkpoint(run / "best.keras"), run / "best.keras", describe_run(metrics, config)


def glue(name: str, value, display: bool = False):
    """Store ``value`` under ``name`` for ``{glue:text}`name:format``` roles in the lesson's prose (myst-nb).

    numpy scalars become Python numbers, so that a format such as ``:.1%`` applies (myst-nb reads the value
    back from its ``repr``; a string's quotes are removed there).
    """
    from myst_nb import glue as _glue

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
        value = value.item()
    _glue(name, value, display=display)
    return value


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
