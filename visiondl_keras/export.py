"""Export a logits model as a SavedModel or a TFLite (LiteRT) file, the temperature folded in.

Exported models take what the Keras model takes, raw RGB images on the 0-255 scale as float32
``(N, 32, 32, 3)``, and output **calibrated probabilities** ``softmax(logits / T)`` with the
temperature of the checkpoint's sidecar (see :mod:`visiondl_keras.calibration`). Each export
writes a small metadata JSON (:func:`export_metadata_path`) with the class names, the temperature
and the quantization, which the inference CLI reads.

TFLite quantization:

* ``"none"``: float32 weights and activations (matches Keras to ~1e-7);
* ``"float16"``: float16 weights (half the size, float32 compute on CPU);
* ``"dynamic"``: int8 weights, activations quantized on the fly (about a quarter of the size);
* ``"int8"``: integer quantization of weights and activations of the network body, calibrated
  on a representative set of training-split images (default 2,000); the classifier head (Dense,
  temperature, softmax) and the input and output stay float32, so the file is a drop-in
  replacement and close classes are not tied by a 1/256 output grid.

Exporting needs TensorFlow (the only backend with SavedModel/TFLite converters).

Example::

    python -m visiondl_keras export artifacts/checkpoints/scratch_resnet9.keras --format all --out /tmp/export
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from .artifacts import atomic_write_bytes, write_json
from .errors import ConfigError, ModelError

QUANTIZATIONS = ("none", "float16", "dynamic", "int8")
FORMATS = ("saved_model", "tflite", "all")


def export_metadata_path(path: str | os.PathLike) -> Path:
    """Where an export's metadata lives: ``DIR/visiondl_export.json`` for a SavedModel folder,
    ``FILE.json`` beside a ``.tflite`` file."""
    path = Path(path)
    if path.suffix == ".tflite":
        return path.with_name(path.name + ".json")
    return path / "visiondl_export.json"


def _require_tensorflow():
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - TensorFlow is a dependency on x86-64
        raise ModelError("exporting needs TensorFlow; install tensorflow (or tensorflow-cpu).") from exc
    return tf


def calibrated_model(model, temperature: float = 1.0):
    """A Keras model ``image -> softmax(model(image) / temperature)`` (float32 probabilities).

    Args:
        model: a Keras model that outputs logits (the package's convention).
        temperature: T > 0 from :func:`visiondl_keras.calibration.load_temperature`.

    Returns:
        A new functional ``keras.Model`` sharing ``model``'s weights.

    Raises:
        ModelError: the model already ends in a softmax (then it outputs probabilities, not logits).
    """
    import keras

    from .calibration import _check_temperature

    temperature = _check_temperature(temperature)
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
        from .data import CLASS_NAMES

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
        >>> export_saved_model(model, "/tmp/resnet9_savedmodel", temperature=1.4)  # doctest: +SKIP
    """
    _require_tensorflow()
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


def _int8_with_float_head(tf, converter) -> bytes:
    """Full integer quantization of the network body; the classifier (Dense + temperature + softmax)
    stays float32.

    An int8 softmax has a resolution of 1/256, so two close classes often get *equal* probabilities
    and the arg-max flips to the lower index (most int8 top-1 disagreements on CIFAR-10 were such ties);
    int8 logits have the same problem at a coarser scale. The head is 0.1% of the compute, so keeping
    it float costs nothing measurable. Uses TFLite's selective quantization (QuantizationDebugger with
    ``denylisted_ops``); without it, everything is quantized.
    """
    debug = getattr(tf.lite.experimental, "QuantizationDebugger", None)
    if debug is None:  # pragma: no cover - older TensorFlow
        return converter.convert()
    import warnings

    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_ops=["FULLY_CONNECTED", "SOFTMAX"])
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
        >>> export_tflite(model, "/tmp/m_int8.tflite", "int8", representative_images=x_train[:500])  # doctest: +SKIP
    """
    if quantization not in QUANTIZATIONS:
        raise ConfigError(f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}.")
    if quantization == "int8" and (representative_images is None or len(representative_images) == 0):
        raise ConfigError("int8 quantization needs representative_images (a few hundred training-split images).")
    path = Path(path)
    if path.suffix != ".tflite":
        raise ConfigError(f"{path}: a TFLite file name must end in .tflite.")
    tf = _require_tensorflow()
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
                flatbuffer = _int8_with_float_head(tf, converter)
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
    """SavedModel plus one TFLite file per quantization into ``out_dir``; returns ``{name: path}``.

    Files: ``saved_model/``, ``model_float32.tflite``, ``model_float16.tflite``,
    ``model_dynamic.tflite``, ``model_int8.tflite``.
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
    """``n`` class-balanced images of the run's training split (for int8 calibration)."""
    from .calibrate import load_splits
    from .data import stratified_subset

    splits = load_splits(settings, progress=progress)
    return splits.x_train[stratified_subset(splits.y_train, n, seed=settings["seed"])]


def _run(args) -> int:
    import warnings

    from .calibrate import read_run_file, resolve_checkpoint, split_settings
    from .calibration import load_temperature
    from .models import load_checkpoint

    log = (lambda *a, **k: None) if args.quiet else print
    if args.format == "saved_model" and args.quantization != "none":
        raise ConfigError("--quantization applies to TFLite; use --format tflite or --format all.")
    checkpoint, run_dir = resolve_checkpoint(args.checkpoint, args.run_dir)
    model = load_checkpoint(checkpoint)
    temperature = 1.0 if args.no_calibration else load_temperature(checkpoint)
    if temperature == 1.0 and not args.no_calibration:
        warnings.warn(f"{checkpoint} has no calibration sidecar; exporting with temperature 1.0 "
                      "(run `python -m visiondl_keras calibrate` first).", stacklevel=1)
    log(f"{checkpoint}: temperature {temperature:.4f}")
    rep = None
    if args.quantization == "int8" or args.format == "all":
        try:
            settings = split_settings(read_run_file(run_dir, "config.json"), args.seed, args.val_size, args.data)
        except ConfigError:
            if args.format != "all":
                raise
            settings = None
            log("no training run found (pass --run-dir, or --seed and --val-size): int8 is skipped, it needs "
                "representative images from the training split")
        if settings is not None:
            rep = representative_from_run(settings, args.representative, progress=not args.quiet)
    out = Path(args.out)
    if args.format == "all":
        export_all(model, out, temperature, rep, source=str(checkpoint), log=log)
    elif args.format == "saved_model":
        log(f"wrote {export_saved_model(model, out, temperature, source=str(checkpoint))}")
    else:
        log(f"wrote {export_tflite(model, out, args.quantization, temperature, rep, source=str(checkpoint))}")
    return 0


def register_commands(subparsers) -> None:
    p = subparsers.add_parser(
        "export",
        help="export a checkpoint as SavedModel / TFLite (temperature folded in)",
        description="Export a checkpoint as a SavedModel folder or a .tflite file that outputs calibrated "
        "probabilities. --format all writes saved_model/ and model_{float32,float16,dynamic,int8}.tflite into --out.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT_OR_RUN_DIR")
    p.add_argument("--format", choices=FORMATS, default="tflite")
    p.add_argument("--quantization", choices=QUANTIZATIONS, default="none", help="TFLite quantization (default none)")
    p.add_argument("--out", required=True, help="output .tflite file, SavedModel folder, or folder for --format all")
    p.add_argument("--no-calibration", action="store_true", help="ignore the temperature sidecar (T = 1)")
    p.add_argument("--run-dir", help="training run directory (for the int8 representative training images)")
    p.add_argument("--data", help="CIFAR-10 source (default: the run's, else VISIONDL_DATA)")
    p.add_argument("--seed", type=int, help="split seed (default: the run's config.json)")
    p.add_argument("--val-size", type=int, help="validation size (default: the run's config.json)")
    p.add_argument("--representative", type=int, default=2000, help="training images for int8 calibration (2000)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_run)


if __name__ == "__main__":  # pragma: no cover
    from .cli import main

    sys.exit(main(["export", *sys.argv[1:]]))
