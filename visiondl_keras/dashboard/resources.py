"""What the dashboard serves: the models it compares and the test images, loaded on first use.

Nothing heavy happens when the page starts: a model is loaded (through
:func:`visiondl_keras.deploy.predictor.load_predictor`, the inference command's loader) the first
time a tab needs it, and the CIFAR-10 test split (through :func:`visiondl_keras.data.load_cifar10`)
the first time a test image or a test-split statistic is asked for. Results over the test subset
are cached per model.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from visiondl_keras.data.cifar10 import CLASS_NAMES, describe_data, load_cifar10
from visiondl_keras.data.splits import stratified_subset
from visiondl_keras.errors import ConfigError, ModelError

DEFAULT_SUBSET = 1000
SUBSET_SEED = 0
# The shipped models, in the order of the side-by-side table (a glob per row, under artifacts/checkpoints).
DEFAULT_MODEL_PATTERNS = ("scratch_airbench94.keras", "scratch_airbench94.tflite", "transfer*.keras", "*int8*.tflite")


def checkpoint_folders(root: str | os.PathLike | None = None) -> list[Path]:
    """Where the default models are looked for: ``artifacts/checkpoints`` under ``root`` (default: the
    current directory), then under the source checkout the package was imported from."""
    from visiondl_keras.deploy.predictor import SOURCE_ROOT

    folders = [Path(root or Path.cwd()) / "artifacts" / "checkpoints"]
    source = SOURCE_ROOT / "artifacts" / "checkpoints"
    if (SOURCE_ROOT / "pyproject.toml").is_file() and source.resolve() not in [f.resolve() for f in folders]:
        folders.append(source)
    return folders


def discover_models(root: str | os.PathLike | None = None) -> list[Path]:
    """The models of the side-by-side comparison found under ``root``'s ``artifacts/checkpoints``:
    the shipped scratch model (``.keras`` with its temperature sidecar, and its ``.tflite``), any
    ``transfer*.keras`` checkpoint and any ``*int8*.tflite`` export, in that order.

    Returns:
        Paths of the existing files (possibly empty).
    """
    for folder in checkpoint_folders(root):
        found: list[Path] = []
        for pattern in DEFAULT_MODEL_PATTERNS:
            found.extend(p for p in sorted(folder.glob(pattern)) if p.is_file() and p not in found)
        if found:
            return found
    return []


def model_label(path: Path, taken: set[str]) -> str:
    """A short unique display name for a model file."""
    name, n = path.name, 2
    while name in taken:
        name, n = f"{path.name} ({n})", n + 1
    return name


@dataclass
class TestImages:
    """The test split and its stratified subset (the images the statistics are computed on)."""

    x: np.ndarray
    y: np.ndarray
    subset: np.ndarray
    description: str

    def subset_note(self) -> str:
        n, total = len(self.subset), len(self.y)
        kind = "every image" if n == total else f"a stratified subset of {n:,} images (seed {SUBSET_SEED})"
        return f"{kind} of the {total:,}-image test split; data: {self.description}"


@dataclass
class Resources:
    """The dashboard's models and data, each loaded on first use (thread-safe).

    ``lock`` (re-entrant) serialises loading; the page also runs every event under it, so that two
    events never import or load the same heavy module at once (Python's imports are not safe
    against that with circular imports, as matplotlib's are) and never compete for the CPU.

    Args:
        models: model files (``.keras``, ``.tflite``, SavedModel folders); see :func:`discover_models`.
        data: the CIFAR-10 source (default: ``$VISIONDL_DATA`` and the other places
            :func:`~visiondl_keras.data.load_cifar10` looks).
        subset: test images used for the statistics (confusion matrix, calibration, misclassified
            examples); 0 or more than 10,000 means the whole test split.
    """

    models: list[Path]
    data: str | None = None
    subset: int = DEFAULT_SUBSET
    _names: dict = field(default_factory=dict, init=False)
    _predictors: dict = field(default_factory=dict, init=False)
    _logits: dict = field(default_factory=dict, init=False)
    _test: TestImages | None = field(default=None, init=False)
    lock: threading.RLock = field(default_factory=threading.RLock, init=False)

    def __post_init__(self):
        if self.subset < 0:
            raise ConfigError(f"subset must be 0 (the whole test split) or a positive number, got {self.subset}.")
        for path in self.models:
            path = Path(path)
            if not path.exists():
                raise ModelError(f"{path}: model not found; pass a .keras checkpoint, a SavedModel folder or a "
                                 ".tflite file.")
            self._names[model_label(path, set(self._names))] = path

    @property
    def names(self) -> list[str]:
        """The display names of the models, in order."""
        return list(self._names)

    def path(self, name: str) -> Path:
        if name not in self._names:
            raise ConfigError(f"unknown model {name!r}; choose one of {', '.join(self._names) or 'none'}.")
        return self._names[name]

    def predictor(self, name: str):
        """The :class:`~visiondl_keras.deploy.predictor.Predictor` of a model (calibrated), loaded once."""
        with self.lock:
            if name not in self._predictors:
                from visiondl_keras.deploy.predictor import load_predictor

                self._predictors[name] = load_predictor(self.path(name), calibrated=True)
            return self._predictors[name]

    def preload(self) -> None:
        """Import the analysis modules and load every model now, holding :attr:`lock` (the server calls it
        in a background thread once the page is up, so the first answer does not wait for Keras and the
        checkpoints). A model that fails to load is left for the page to report when it is used."""
        from visiondl_keras.errors import VisionDLError

        with self.lock:
            import visiondl_keras.evaluation.calibration  # noqa: F401
            import visiondl_keras.evaluation.gradcam  # noqa: F401
            import visiondl_keras.evaluation.tta  # noqa: F401
            import visiondl_keras.reporting.plots  # noqa: F401

            for name in self.names:
                try:
                    self.predictor(name)
                except VisionDLError:
                    continue

    def gradient_models(self) -> list[str]:
        """The names of the models with gradients (``.keras``): Grad-CAM and FGSM need one."""
        return [n for n, p in self._names.items() if p.suffix == ".keras"]

    def test_images(self) -> TestImages:
        """The test split and its stratified subset, loaded on first use."""
        with self.lock:
            if self._test is None:
                ds = load_cifar10(self.data, progress=False)
                n = len(ds.y_test) if self.subset == 0 else min(self.subset, len(ds.y_test))
                subset = stratified_subset(ds.y_test, n, seed=SUBSET_SEED)
                self._test = TestImages(ds.x_test, np.asarray(ds.y_test, np.int64), subset,
                                        describe_data(ds)["description"])
            return self._test

    def subset_logits(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(logits, labels)`` of a model on the test subset (cached). Exported models, whose outputs
        are calibrated probabilities, give ``T * log(p)``: logits up to a per-row constant, which
        neither softmax nor temperature scaling sees."""
        with self.lock:
            if name not in self._logits:
                test = self.test_images()
                self._logits[name] = model_logits(self.predictor(name), test.x[test.subset])
            return self._logits[name], self.test_images().y[self.test_images().subset]


def model_logits(predictor, images: np.ndarray) -> np.ndarray:
    """Logits of a predictor on uint8 images: the Keras model's own, or ``T * log(p)`` for exports."""
    if predictor.keras_model is not None:
        from visiondl_keras.evaluation.gradients import predict_logits

        return np.asarray(predict_logits(predictor.keras_model, images), np.float64)
    probs = predictor.predict(images)
    return predictor.temperature * np.log(np.clip(probs, 1e-38, None))


def class_names(predictor=None) -> list[str]:
    """The class names of a predictor (CIFAR-10's without one)."""
    return list(predictor.class_names) if predictor is not None else list(CLASS_NAMES)
