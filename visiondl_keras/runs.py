"""Run directories: the one place that knows what a run directory holds.

Every command that trains, calibrates or evaluates writes (or reads) a run directory::

    RUN_DIR/config.json        the configuration (a TrainConfig, or a transfer recipe's dict)
    RUN_DIR/environment.json   versions, backend, devices, CPU, seed, dataset fingerprint
    RUN_DIR/history.csv        one row per epoch
    RUN_DIR/state.json         progress: status ("running", "completed", "diverged"), epochs done, best epoch
    RUN_DIR/metrics.json       final metrics; its "data" entry describes the dataset (see
                               visiondl_keras.data.cifar10.describe_data)
    RUN_DIR/best.keras         best checkpoint by validation accuracy
    RUN_DIR/last.keras         last checkpoint with optimizer state (for resuming)
    RUN_DIR/figures/           figures
    RUN_DIR/tensorboard/       TensorBoard scalars

Shipped runs live under ``artifacts/``: ``artifacts/checkpoints/NAME.keras`` (weights only) and
``artifacts/runs/RUN_NAME/`` (the small files above), written by :func:`publish_run`.
"""

from __future__ import annotations

import os
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.io import read_csv, read_json, write_csv, write_json

CHECKPOINT_NAMES = ("best.keras", "model.keras", "last.keras")
INT_COLUMNS = ("epoch", "loss_spikes")
RUN_FILES = ("config.json", "history.csv", "metrics.json", "environment.json", "state.json")


@dataclass(frozen=True)
class RunDir:
    """Paths and readers/writers of one run directory.

    Example:
        >>> run = RunDir("runs/quick")
        >>> run.best.name, run.history.name
        ('best.keras', 'history.csv')
    """

    path: Path

    def __init__(self, path: str | os.PathLike):
        object.__setattr__(self, "path", Path(path))

    config = property(lambda self: self.path / "config.json")
    environment = property(lambda self: self.path / "environment.json")
    history = property(lambda self: self.path / "history.csv")
    state_file = property(lambda self: self.path / "state.json")
    metrics = property(lambda self: self.path / "metrics.json")
    best = property(lambda self: self.path / "best.keras")
    last = property(lambda self: self.path / "last.keras")
    figures = property(lambda self: self.path / "figures")
    tensorboard = property(lambda self: self.path / "tensorboard")

    def create(self) -> RunDir:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def read(self, name: str) -> dict:
        """``RUN_DIR/name`` as a dict, or ``{}`` when there is no such file.

        Raises:
            ConfigError: the file exists but is not valid JSON (a damaged run directory).
        """
        path = self.path / name
        if not path.is_file():
            return {}
        try:
            return read_json(path)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc}); the run directory is damaged.") from exc

    def write(self, name: str, obj) -> Path:
        return write_json(self.path / name, obj)

    def state(self) -> dict | None:
        return self.read("state.json") or None

    def write_state(self, status: str, **info) -> Path:
        return write_json(self.state_file, {"status": status, **info})

    def read_history(self) -> list[dict]:
        """The rows of ``history.csv`` (numbers as floats, counters such as ``epoch`` as ints)."""
        rows = read_csv(self.history) if self.history.is_file() else []
        for row in rows:
            for key in INT_COLUMNS:
                if isinstance(row.get(key), float) and row[key].is_integer():
                    row[key] = int(row[key])
        return rows

    def write_history(self, rows: list[dict]) -> Path:
        return write_csv(self.history, rows)

    def is_completed(self) -> bool:
        return (self.state() or {}).get("status") == "completed" and self.metrics.is_file()


def checkpoint_file(path: str | os.PathLike) -> Path:
    """The ``.keras`` file that ``path`` names: ``path`` itself, or a run directory's ``best.keras``,
    ``model.keras`` or ``last.keras`` (the first that exists).

    Raises:
        ModelError: ``path`` is a folder without any of those checkpoints.
    """
    path = Path(path)
    if not path.is_dir():
        return path
    found = next((path / n for n in CHECKPOINT_NAMES if (path / n).is_file()), None)
    if found is None:
        raise ModelError(f"{path}: folder has no {', '.join(CHECKPOINT_NAMES)} checkpoint; pass the .keras file.")
    return found


def resolve_checkpoint(path: str | os.PathLike, run_dir: str | os.PathLike | None = None) -> tuple[Path, Path | None]:
    """The ``.keras`` checkpoint and the run directory (with ``config.json``) that ``path`` names.

    Args:
        path: a ``.keras`` file or a run directory (its ``best.keras``, ``model.keras`` or
            ``last.keras`` is used).
        run_dir: the run directory when it is not the checkpoint's own folder (e.g. a shipped
            checkpoint under ``artifacts/checkpoints/`` and its run files under ``artifacts/runs/``).

    Returns:
        ``(checkpoint, run_dir)``; ``run_dir`` is None when no ``config.json`` was found.

    Raises:
        ModelError: no checkpoint at ``path``.
        ConfigError: ``run_dir`` was given but holds no ``config.json``.
    """
    path = Path(path)
    if path.is_dir():
        checkpoint = checkpoint_file(path)
    elif path.is_file():
        if path.suffix != ".keras":
            raise ModelError(f"{path}: expected a .keras checkpoint or a run directory.")
        checkpoint = path
    else:
        raise ModelError(f"{path}: no such checkpoint or run directory.")
    if run_dir is not None:
        run_dir = Path(run_dir)
        if not (run_dir / "config.json").is_file():
            raise ConfigError(f"{run_dir}: no config.json there; --run-dir must be the training run's directory.")
        return checkpoint, run_dir
    if (checkpoint.parent / "config.json").is_file():
        return checkpoint, checkpoint.parent
    return checkpoint, None


def read_run_file(run_dir: str | os.PathLike | None, name: str) -> dict:
    """``run_dir/name`` as a dict, or ``{}`` when there is no run directory or no such file."""
    return {} if run_dir is None else RunDir(run_dir).read(name)


def split_settings(config: dict, seed=None, val_size=None, data=None) -> dict:
    """The arguments of :func:`visiondl_keras.data.splits.train_val_split` that a run used.

    Explicit values win over the run's ``config.json``. Without a config, ``seed`` and
    ``val_size`` must be given: a guessed split could put training images into the calibration set.
    """
    if not config and (seed is None or val_size is None):
        raise ConfigError(
            "no config.json found for this checkpoint; pass --run-dir RUN_DIR, or --seed and --val-size of the "
            "training run, so that the validation split can be reproduced."
        )
    settings = {
        "seed": int(seed if seed is not None else config.get("seed", 0)),
        "val_size": int(val_size if val_size is not None else config.get("val_size", 5000)),
        "limit": config.get("limit"),
        "test_limit": config.get("test_limit"),
        "data": data if data is not None else config.get("data"),
    }
    if settings["val_size"] <= 0:
        raise ConfigError("the run has no validation split (val_size 0); a temperature cannot be fitted without one.")
    return settings


def save_keras_atomic(model, path: str | os.PathLike) -> Path:
    """``model.save(path)`` through a temporary file and a rename (a reader never sees half a checkpoint)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp.keras")
    model.save(tmp)
    os.replace(tmp, path)
    return path


def portable_command(command: str | None) -> str | None:
    """A recorded command line with its machine-local absolute paths made portable.

    ``--run-dir /anywhere/NAME`` (or ``--run-dir=/anywhere/NAME``) becomes ``--run-dir runs/NAME``
    (where the repository keeps runs) and any other absolute path ``/anywhere/NAME`` (``--data``,
    ``--artifacts=``, a positional file) becomes ``NAME``; relative paths and everything else are kept
    as typed.

    Example:
        >>> portable_command("python -m visiondl_keras train --run-dir /tmp/x/fast --data /d/c.tar.gz --epochs 8")
        'python -m visiondl_keras train --run-dir runs/fast --data c.tar.gz --epochs 8'
    """
    if not command:
        return command
    try:
        words = shlex.split(command)
    except ValueError:  # unbalanced quotes: leave it as recorded
        return command
    for i, word in enumerate(words):
        option, eq, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if os.path.isabs(value):
            run_dir = option == "--run-dir" or (not option and i and words[i - 1] == "--run-dir")
            words[i] = option + eq + (f"runs/{Path(value).name}" if run_dir else Path(value).name)
    return shlex.join(words)


def without_local_paths(obj):
    """``obj`` (parsed JSON) without machine-local paths: a ``"source"`` that is an absolute path is
    cut to its file name, a ``"command"`` goes through :func:`portable_command`.

    Published files identify their data by description and fingerprint; the folder it was read
    from on the machine that trained is nobody else's business (and differs on every machine).

    Example:
        >>> without_local_paths({"data": {"source": "/home/me/cifar10-jpeg.tar.gz", "n": 3}})
        {'data': {'source': 'cifar10-jpeg.tar.gz', 'n': 3}}
    """
    if isinstance(obj, dict):
        return {k: (Path(v).name if k == "source" and isinstance(v, str) and os.path.isabs(v)
                    else portable_command(v) if k == "command" and isinstance(v, str)
                    else without_local_paths(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [without_local_paths(v) for v in obj]
    return obj


def publish_run(run_dir: str | os.PathLike, name: str, out: str | os.PathLike = "artifacts",
                run_name: str | None = None, model=None, extra_files=()) -> dict:
    """Ship a finished run: its best checkpoint without optimizer state, and its small run files.

    Writes ``OUT/checkpoints/NAME.keras`` (weights only: dropping the optimizer state halves the
    file), records it in ``OUT/runs/RUN_NAME/published.json`` and copies the run files (JSON files through :func:`without_local_paths`) (``config.json``, ``history.csv``, ``metrics.json``,
    ``environment.json``, ``state.json``, ``figures/`` and ``extra_files``) to
    ``OUT/runs/RUN_NAME/`` (default: NAME).

    Args:
        run_dir: a completed run directory.
        name: the checkpoint's name.
        out: the artifacts folder.
        run_name: folder name for the run files.
        model: the model to ship (default: the run's ``best.keras``).
        extra_files: further file names of the run directory to copy.

    Returns:
        ``{"checkpoint": path, "run_dir": path, "bytes": size}``.

    Raises:
        ConfigError: the run is not completed.
    """
    import keras

    run = RunDir(run_dir)
    state = run.state() or {}
    if state.get("status") != "completed":
        raise ConfigError(f"{run.path}: the run is not completed (status {state.get('status')!r}); finish it first.")
    out = Path(out)
    if model is None:
        model = keras.saving.load_model(run.best, compile=False)
    ckpt = out / "checkpoints" / f"{name}.keras"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    save_keras_atomic(model, ckpt)
    dest = out / "runs" / (run_name or name)
    dest.mkdir(parents=True, exist_ok=True)
    for f in (*RUN_FILES, *extra_files):
        if (run.path / f).suffix == ".json" and (run.path / f).is_file():
            write_json(dest / f, without_local_paths(read_json(run.path / f)))
        elif (run.path / f).is_file():
            shutil.copy2(run.path / f, dest / f)
    if run.figures.is_dir():
        shutil.copytree(run.figures, dest / "figures", dirs_exist_ok=True)
    record_publication(dest, ckpt.relative_to(out))
    return {"checkpoint": str(ckpt), "run_dir": str(dest), "bytes": ckpt.stat().st_size}


PUBLISHED = "published.json"


def record_publication(run_files: str | os.PathLike, checkpoint: str | os.PathLike) -> Path:
    """Write ``RUN_FILES/published.json``: which checkpoint (relative to the artifacts folder) the run
    was published as, so that reports (the model card) find it from the run directory alone."""
    return write_json(Path(run_files) / PUBLISHED, {"checkpoint": Path(checkpoint).as_posix()})


def published_checkpoint(run_dir: str | os.PathLike, artifacts: str | os.PathLike) -> Path | None:
    """The checkpoint ``RUN_DIR/published.json`` names (under ``artifacts``), or None."""
    record = Path(run_dir) / PUBLISHED
    if not record.is_file():
        return None
    try:
        return Path(artifacts) / read_json(record)["checkpoint"]
    except (KeyError, TypeError, ValueError):
        raise ConfigError(f"{record}: not a publication record; publish the run again.") from None
