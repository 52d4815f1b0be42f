"""Export a logits model as a SavedModel or a TFLite (LiteRT) file, the temperature folded in.

Exported models take what the Keras model takes, raw RGB images on the 0-255 scale as float32
``(N, 32, 32, 3)``, and output **calibrated probabilities** ``softmax(logits / T)`` with the
temperature of the checkpoint's sidecar (see :mod:`visiondl_keras.evaluation.calibration`). Each export
writes a small metadata JSON (:func:`export_metadata_path`) with the class names, the temperature
and the quantization, which the inference CLI reads.

TFLite quantization:

* ``"none"``: float32 weights and activations (matches Keras to ~1e-7);
* ``"float16"``: float16 weights (half the size, float32 compute on CPU);
* ``"dynamic"``: int8 weights, activations quantized on the fly (about a quarter of the size);
* ``"int8"``: integer quantization of weights and activations of the network body, calibrated
  on a representative set of training-split images (default 2,000); the classifier head (Dense,
  temperature, softmax), the fast network's patch-whitening stem (:data:`FLOAT_STEM_LAYERS`: its
  outputs span too wide a range for 256 levels) and the input and output stay float32, so the file
  is a drop-in replacement and close classes are not tied by a 1/256 output grid.

Exporting needs TensorFlow (the only backend with SavedModel/TFLite converters; a dependency of
the package on every platform).

Example::

    python -m visiondl_keras export artifacts/checkpoints/scratch_airbench94.keras --format all --out runs/export
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from visiondl_keras.data.cifar10 import CLASS_NAMES
from visiondl_keras.data.splits import load_run_splits, stratified_subset
from visiondl_keras.deploy.metadata import export_metadata_path
from visiondl_keras.errors import ConfigError, ModelError
from visiondl_keras.evaluation.calibration import load_temperature, read_calibration
from visiondl_keras.evaluation.metrics import check_temperature
from visiondl_keras.evaluation.tta import tta_model
from visiondl_keras.io import atomic_write_bytes, read_json, write_json
from visiondl_keras.models import load_checkpoint
from visiondl_keras.models.storage import cast_model, is_float32
from visiondl_keras.names import EXPORT_FORMATS as FORMATS
from visiondl_keras.names import QUANTIZATIONS
from visiondl_keras.runs import read_run_file, resolve_checkpoint, split_settings


def calibrated_model(model, temperature: float = 1.0):
    """A Keras model ``image -> softmax(model(image) / temperature)`` (float32 probabilities).

    Args:
        model: a Keras model that outputs logits (the package's convention).
        temperature: T > 0 from :func:`visiondl_keras.evaluation.calibration.load_temperature`.

    Returns:
        A new functional ``keras.Model`` sharing ``model``'s weights (for a model that stores or
        computes in bfloat16/float16, e.g. one trained with ``mixed_bfloat16``, a float32 copy's:
        the converters expect float32).

    Raises:
        ModelError: the model already ends in a softmax (then it outputs probabilities, not logits).
    """
    temperature = check_temperature(temperature)
    if not is_float32(model):  # bfloat16 weights or mixed-precision compute: converters want float32
        model = cast_model(model, "float32")
    last = model.layers[-1] if model.layers else None
    if isinstance(last, keras.layers.Softmax) or getattr(last, "activation", None) is keras.activations.softmax:
        raise ModelError(f"{model.name}: the model ends in a softmax; export expects a model that outputs logits.")
    inputs = keras.Input(shape=tuple(model.input_shape[1:]), dtype="float32", name="image")
    logits = model(inputs, training=False)
    scaled = keras.layers.Rescaling(1.0 / temperature, name="temperature")(logits)
    probs = keras.layers.Activation("softmax", dtype="float32", name="probabilities")(scaled)
    return keras.Model(inputs, probs, name=f"{model.name}_calibrated")


def _metadata(model, fmt: str, temperature: float, quantization: str | None, source: str | None, class_names) -> dict:
    num_classes = int(model.output_shape[-1])
    if class_names is None:
        class_names = CLASS_NAMES if num_classes == len(CLASS_NAMES) else [str(i) for i in range(num_classes)]
    if len(class_names) != num_classes:
        raise ConfigError(f"class_names has {len(class_names)} names but the model has {num_classes} outputs.")
    return {
        "format": fmt,
        "quantization": quantization,
        "temperature": float(temperature),
        "temperature_folded_in": True,
        "outputs": "calibrated probabilities softmax(logits / temperature)",
        "input": {"shape": [None, *[int(d) for d in model.input_shape[1:]]], "dtype": "float32",
                  "range": "RGB 0-255 (the model normalises itself)"},
        "class_names": list(class_names),
        "source_checkpoint": source,
    }


def export_saved_model(model, path: str | os.PathLike, temperature: float = 1.0, class_names=None,
                       source: str | None = None) -> Path:
    """Export a TensorFlow SavedModel (``model.export``) that outputs calibrated probabilities.

    Args:
        model: a Keras logits model.
        path: the SavedModel folder to write (replaced when it exists).
        temperature: folded into the graph.
        class_names: label names for the metadata (default CIFAR-10's).
        source: the checkpoint it came from, for the metadata.

    Returns:
        The folder. Serve it with ``tf.saved_model.load(path).serve(images)``.

    Example:
        >>> export_saved_model(model, "runs/resnet9_savedmodel", temperature=1.4)  # doctest: +SKIP
    """
    path = Path(path)
    wrapped = calibrated_model(model, temperature)
    meta = _metadata(model, "saved_model", temperature, None, source, class_names)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        wrapped.export(str(tmp / "sm"), format="tf_saved_model", verbose=False)
        write_json(export_metadata_path(tmp / "sm"), meta)
        if path.exists():
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        os.replace(tmp / "sm", path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def _representative_dataset(images: np.ndarray):
    def gen():
        for img in images:
            yield [np.asarray(img, dtype=np.float32)[None]]

    return gen


# Layers of the fast network (models.airbench) that stay float32 in an int8 export: the patch-
# whitening stem. Its filters are eigenvectors scaled by 1/sqrt(eigenvalue), so its outputs span a far
# wider range than int8's 256 levels resolve; the stem is ~6% of the network's compute.
FLOAT_STEM_LAYERS = ("whiten", "whiten_gelu", "group1_conv1")


def _float_stem_nodes(saved_model: Path) -> list[str]:
    """Output tensor names of the :data:`FLOAT_STEM_LAYERS` in the float conversion of ``saved_model``."""
    flatbuffer = tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = tf.lite.Interpreter(model_content=flatbuffer).get_tensor_details()
    keys = tuple(f"/{name}_1/" for name in FLOAT_STEM_LAYERS) + tuple(f"/{name}/" for name in FLOAT_STEM_LAYERS)
    return [d["name"] for d in details if len(d["shape"]) == 4 and any(k in d["name"].split(";")[0] for k in keys)]


def _int8_with_float_head(converter, float_nodes=()) -> bytes:
    """Full integer quantization of the network body; the classifier (Dense + temperature + softmax)
    and the nodes ``float_nodes`` (the whitening stem of the fast network) stay float32.

    An int8 softmax has a resolution of 1/256, so two close classes often get *equal* probabilities
    and the arg-max flips to the lower index (most int8 top-1 disagreements on CIFAR-10 were such ties);
    int8 logits have the same problem at a coarser scale. The head is 0.1% of the compute, so keeping
    it float costs nothing measurable. Uses TFLite's selective quantization (QuantizationDebugger with
    ``denylisted_ops``); without it, everything is quantized.
    """
    debug = getattr(tf.lite.experimental, "QuantizationDebugger", None)
    if debug is None:  # pragma: no cover - older TensorFlow
        return converter.convert()
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["FULLY_CONNECTED", "SOFTMAX"],
                                                            denylisted_nodes=list(float_nodes))
    with warnings.catch_warnings():  # the debugger uses the deprecated tf.lite.Interpreter internally
        warnings.simplefilter("ignore")
        debugger = debug(converter=converter, debug_dataset=converter.representative_dataset, debug_options=options)
        return debugger.get_nondebug_quantized_model()


def export_tflite(model, path: str | os.PathLike, quantization: str = "none", temperature: float = 1.0,
                  representative_images: np.ndarray | None = None, class_names=None, source: str | None = None) -> Path:
    """Export a TFLite (LiteRT) flatbuffer that outputs calibrated probabilities.

    Args:
        model: a Keras logits model.
        path: the ``.tflite`` file to write.
        quantization: ``"none"`` | ``"float16"`` | ``"dynamic"`` | ``"int8"`` (see the module docstring).
        temperature: folded into the graph.
        representative_images: uint8 images from the **training split** (a few hundred to a few thousand) to
            calibrate the int8 activation ranges; required for ``"int8"``.
        class_names: label names for the metadata.
        source: the checkpoint it came from, for the metadata.

    Returns:
        The file's path.

    Example:
        >>> export_tflite(model, "runs/m_int8.tflite", "int8", representative_images=x_train[:500])  # doctest: +SKIP
    """
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}.")
    if quantization == "int8" and (representative_images is None or len(representative_images) == 0):
        raise ConfigError("int8 quantization needs representative_images (a few hundred training-split images).")
    path = Path(path)
    if path.suffix != ".tflite":
        raise ConfigError(f"{path}: a TFLite file name must end in .tflite.")
    meta = _metadata(model, "tflite", temperature, quantization, source, class_names)
    with tempfile.TemporaryDirectory(prefix="visiondl-export-") as tmp:
        sm = export_saved_model(model, Path(tmp) / "sm", temperature, class_names, source)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(sm))
        if quantization == "float16":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.target_spec.supported_types = [tf.float16]
        elif quantization == "dynamic":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        elif quantization == "int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = _representative_dataset(np.asarray(representative_images))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            converter.inference_input_type = tf.float32
            converter.inference_output_type = tf.float32
        try:
            if quantization == "int8":
                flatbuffer = _int8_with_float_head(converter, _float_stem_nodes(sm))
            else:
                flatbuffer = converter.convert()
        except Exception as exc:  # the converter's errors are long C++ dumps
            raise ModelError(f"TFLite conversion ({quantization}) failed: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from exc
    atomic_write_bytes(path, flatbuffer)
    write_json(export_metadata_path(path), meta)
    return path


def export_all(model, out_dir: str | os.PathLike, temperature: float = 1.0, representative_images=None,
               quantizations=QUANTIZATIONS, source: str | None = None, class_names=None, log=print) -> dict:
    """SavedModel plus one TFLite file per quantization into ``out_dir``.

    Files: ``saved_model/``, ``model_float32.tflite``, ``model_float16.tflite``,
    ``model_dynamic.tflite``, ``model_int8.tflite``.

    Args:
        model: a Keras logits model.
        out_dir: the folder to write into.
        temperature: folded into every export.
        representative_images: training-split images for int8 (None: int8 is skipped).
        quantizations: the TFLite quantizations to write.
        source: the checkpoint it came from, for the metadata.
        class_names: label names for the metadata.
        log: called with one line per file written.

    Returns:
        ``{name: path}``: ``saved_model`` and ``tflite_<float32|float16|dynamic|int8>``.
    """
    out_dir = Path(out_dir)
    paths = {"saved_model": export_saved_model(model, out_dir / "saved_model", temperature, class_names, source)}
    log(f"wrote {paths['saved_model']}")
    for q in quantizations:
        name = "float32" if q == "none" else q
        if q == "int8" and representative_images is None:
            log("skipped int8: no representative images")
            continue
        paths[f"tflite_{name}"] = export_tflite(model, out_dir / f"model_{name}.tflite", q, temperature,
                                                representative_images, class_names, source)
        log(f"wrote {paths[f'tflite_{name}']}")
    return paths


def representative_from_run(settings: dict, n: int = 2000, progress: bool = False) -> np.ndarray:
    """``n`` class-balanced images of a run's training split (for int8 calibration).

    Args:
        settings: the run's split, from :func:`visiondl_keras.runs.split_settings`.
        n: how many images.
        progress: progress bar while loading the data.

    Returns:
        uint8 images (n, 32, 32, 3) of the training split.

    Raises:
        DataError: the data cannot be loaded.
    """
    splits = load_run_splits(settings, progress=progress)
    return splits.x_train[stratified_subset(splits.y_train, n, seed=settings["seed"])]


def _representative_for(fmt: str, quantization: str, run_dir, seed, val_size, data, n: int, progress: bool, log):
    """Training images for int8, or None when no int8 file is written (or, for ``"all"``, no run is known)."""
    if quantization != "int8" and fmt != "all":
        return None
    try:
        settings = split_settings(read_run_file(run_dir, "config.json"), seed, val_size, data)
    except ConfigError:
        if fmt != "all":
            raise
        log("no training run found (pass --run-dir, or --seed and --val-size): int8 is skipped, it needs "
            "representative images from the training split")
        return None
    return representative_from_run(settings, n, progress=progress)


def export_checkpoint(checkpoint, out, fmt: str = "tflite", quantization: str = "none", calibrated: bool = True,
                      run_dir=None, data=None, seed=None, val_size=None, representative: int = 2000,
                      progress: bool = True, log=print, tta: int = 0) -> dict:
    """Export a checkpoint with its calibration temperature folded in.

    Args:
        checkpoint: a ``.keras`` file or a run directory.
        out: the ``.tflite`` file (``fmt="tflite"``), the SavedModel folder (``"saved_model"``) or
            the folder for every format (``"all"``, see :func:`export_all`).
        fmt: one of :data:`FORMATS`.
        quantization: TFLite quantization, one of :data:`QUANTIZATIONS` (``"tflite"`` only).
        calibrated: fold in the temperature of the checkpoint's sidecar (``False``: T = 1).
        run_dir: the training run's directory when it is not the checkpoint's folder (int8 needs
            its training split).
        data, seed, val_size: override the run's ``config.json`` for that split.
        representative: training images that calibrate int8.
        progress: progress bar while loading the data.
        log: called with each progress line (``print`` by default).
        tta: export the model wrapped in test-time augmentation of this level
            (:func:`visiondl_keras.evaluation.tta.tta_model`; 0: none). Level 1 doubles and level 2
            multiplies by six the cost of one prediction.

    Returns:
        ``{name: path}`` of the files written.

    Raises:
        ConfigError: a bad format or quantization, a quantization with ``fmt="saved_model"``, or
            int8 without a way to reproduce the training split.
        ModelError: the checkpoint is missing or unreadable, or the conversion fails.

    Example:
        >>> export_checkpoint("runs/quick", "runs/export", fmt="all")  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}.")
    if fmt == "saved_model" and quantization != "none":
        raise ConfigError("quantization applies to TFLite; export with format 'tflite' or 'all'.")
    checkpoint, run_dir = resolve_checkpoint(checkpoint, run_dir)
    model = load_checkpoint(checkpoint)
    if not is_float32(model):  # bfloat16 weights or mixed-precision compute: the converters expect float32
        model = cast_model(model, "float32")
    model = tta_model(model, tta)
    temperature = load_temperature(checkpoint) if calibrated else 1.0
    if temperature == 1.0 and calibrated:
        warnings.warn(f"{checkpoint} has no calibration sidecar; exporting with temperature 1.0 "
                      "(run `python -m visiondl_keras calibrate` first).", stacklevel=2)
    log(f"{checkpoint}: temperature {temperature:.4f}")
    rep = _representative_for(fmt, quantization, run_dir, seed, val_size, data, representative, progress, log)
    out, source = Path(out), str(checkpoint)
    if fmt == "all":
        paths = export_all(model, out, temperature, rep, source=source, log=log)
    elif fmt == "saved_model":
        paths = {"saved_model": export_saved_model(model, out, temperature, source=source)}
    else:
        paths = {"tflite": export_tflite(model, out, quantization, temperature, rep, source=source)}
    rule = (read_calibration(checkpoint) or {}).get("ood") if calibrated and tta == 0 else None
    if isinstance(rule, dict):  # the out-of-distribution caution travels with the calibrated export
        for path in paths.values():
            meta_path = export_metadata_path(path)
            if meta_path.is_file():
                write_json(meta_path, {**read_json(meta_path), "ood": rule})
    if fmt != "all":
        log(f"wrote {next(iter(paths.values()))}")
    return paths
