"""Classify image files with a (calibrated) model: :func:`load_predictor` and :func:`classify`.

The command line is ``python -m visiondl_keras.infer PATH [PATH ...]`` (:mod:`visiondl_keras.cli.infer`)::

    python -m visiondl_keras.infer samples/                       # every image in the folder
    python -m visiondl_keras.infer cat.png dog.jpg --top-k 3 --json
    python -m visiondl_keras.infer img.png --model model_int8.tflite
    python -m visiondl_keras.infer img.png --gradcam out/         # Grad-CAM overlays (.keras models)

**Models** (``--model``): a ``.keras`` checkpoint or a run directory, a SavedModel folder or a
``.tflite`` file written by ``python -m visiondl_keras export``. Without one, the default model is
the first of (:func:`find_default_model`):

1. the path in the environment variable ``$VISIONDL_MODEL``;
2. ``artifacts/checkpoints/scratch_airbench94.tflite`` (the shipped model's calibrated TFLite
   export), then ``scratch_airbench94.keras``, under the current directory, then under the source
   checkout the package was imported from (when it was);
3. the same two files in the package, ``visiondl_keras/deploy/default_model/`` (with the
   checkpoint's calibration sidecar beside it).

The ``.tflite`` file comes first because it answers in a fraction of a second (LiteRT, no Keras or
TensorFlow to import); Grad-CAM needs gradients, so ``--gradcam`` looks for the ``.keras`` file
only (``find_default_model(need_gradients=True)``). For a ``.keras`` checkpoint the
probabilities are ``softmax(logits / T)`` with the temperature of its calibration sidecar
(``--no-calibration``: T = 1); exported models have T folded in (``--no-calibration`` undoes it
with the T recorded in the export's metadata). TFLite files run through LiteRT
(``ai-edge-litert``) when installed, else ``tf.lite``; neither path imports Keras, and the LiteRT
path does not import TensorFlow, so it starts in well under a second.

**Preprocessing** (one method, :func:`preprocess_image`): the first frame of an animated image;
the EXIF orientation applied; 16-bit and 32-bit grayscale scaled to 8 bits; alpha composited on
white; any mode (L, LA, P, PA, CMYK, YCbCr, 1, I;16, I, F, RGBA, ...) converted to RGB; the
central square cropped (CIFAR-10 images are square, so objects keep their proportions); resized
to 32x32 with Pillow's BOX filter (area averaging: every source pixel counts equally, the
anti-aliased way to shrink, and it maps an N-times nearest-neighbour upscale of a 32x32 image,
like the files in ``samples/``, back to the exact original). Training images are 32x32 already,
so a 32x32 input is used unchanged.

**Errors**: a file that is missing, empty, truncated, not an image, or a decompression bomb
(more than ``MAX_PIXELS`` pixels), and a folder without images, are recorded per input
(:class:`InputError` messages in :func:`classify`'s results); the other inputs are still processed.
A model that cannot be found or loaded raises :class:`~visiondl_keras.errors.ModelError`.

The output is deterministic: the same file gives the same numbers on every run, alone or with
other files (images are run one at a time for TFLite and in fixed-size padded batches otherwise).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from visiondl_keras.data.cifar10 import CLASS_NAMES
from visiondl_keras.deploy.metadata import read_export_metadata
from visiondl_keras.errors import ConfigError, DataError, ModelError
from visiondl_keras.io import atomic_write_bytes
from visiondl_keras.runs import resolve_checkpoint

IMAGE_SIZE = 32
MAX_PIXELS = 64_000_000  # 64 megapixels; Pillow's own bomb limit is 89M (warning) / 179M (error)
BATCH = 32
DEFAULT_MODEL_NAME = "scratch_airbench94.keras"
DEFAULT_TFLITE_NAME = "scratch_airbench94.tflite"
MODEL_ENV = "VISIONDL_MODEL"
SOURCE_ROOT = Path(__file__).resolve().parents[2]  # the repository root when imported from a source checkout
PACKAGED_MODEL_DIR = Path(__file__).resolve().parent / "default_model"
# What a folder expands to (a file named explicitly is tried whatever its extension).
FOLDER_EXTENSIONS = (".png", ".jpg", ".jpeg", ".jfif", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm",
                     ".pbm", ".pnm", ".ico", ".tga")


class InputError(DataError):
    """An input image that cannot be classified (the message names the problem, not the path)."""


# --------------------------------------------------------------------------------------------
# Images
# --------------------------------------------------------------------------------------------


def _to_8bit_gray(im):
    """I;16*, I and F images as 8-bit 'L' (16-bit data scaled by 255/65535)."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode == "F":
        scale = 255.0 if arr.size and np.nanmax(arr) <= 1.0 else 1.0
        arr = np.nan_to_num(arr) * scale
    elif im.mode.startswith("I;16") or (arr.size and arr.max() > 255):
        arr = arr * (255.0 / 65535.0)
    return Image.fromarray(np.clip(np.rint(arr), 0, 255).astype(np.uint8), mode="L")


def to_rgb(im):
    """Any Pillow image as 8-bit RGB (alpha composited on white)."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _to_8bit_gray(im)
    if im.mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif im.mode == "PA":
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "La", "RGBa"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def preprocess_image(im) -> np.ndarray:
    """A Pillow image as the model's input: uint8 (32, 32, 3), by the one method of the module docstring.

    Args:
        im: an opened ``PIL.Image.Image`` (any mode and size).

    Returns:
        uint8 array (32, 32, 3).

    Example:
        >>> from PIL import Image
        >>> preprocess_image(Image.new("L", (64, 48), 128)).shape
        (32, 32, 3)
    """
    if getattr(im, "n_frames", 1) > 1:
        im.seek(0)
    im = ImageOps.exif_transpose(im) or im
    im = to_rgb(im)
    w, h = im.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        im = im.crop((left, top, left + side, top + side))
    if side != IMAGE_SIZE:
        im = im.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
    return np.asarray(im, dtype=np.uint8).copy()


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Open ``path`` and preprocess it (see :func:`preprocess_image`).

    Raises:
        InputError: the file is missing, empty, truncated, not an image, or too large.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise InputError("no such file or folder") from exc
    except OSError as exc:
        raise InputError(f"cannot read it ({exc.strerror or exc})") from exc
    if not path.is_file():
        raise InputError("not a regular file")
    if size == 0:
        raise InputError("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise InputError(
                        f"image is {w}x{h} = {w * h:,} pixels, over the {MAX_PIXELS:,}-pixel limit "
                        "(possible decompression bomb); shrink it first"
                    )
                im.load()
                return preprocess_image(im)
    except InputError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputError("not an image file Pillow can read") from exc
    except PermissionError as exc:
        raise InputError("permission denied") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, KeyError, MemoryError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "truncated" in msg.lower():
            raise InputError(f"truncated or corrupt image ({msg})") from exc
        raise InputError(f"corrupt or unsupported image ({msg})") from exc


def expand_paths(paths) -> list[tuple[str, str | None]]:
    """The inputs in order: files as given, folders replaced by their images (recursive, sorted).

    Returns:
        A list of ``(path, error)``; ``error`` is None for a file to classify, or a message for a
        missing path or a folder without images.
    """
    out: list[tuple[str, str | None]] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            files = sorted(
                f for f in p.rglob("*")
                if f.is_file() and f.suffix.lower() in FOLDER_EXTENSIONS
                and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not files:
                out.append((str(raw), f"folder contains no images (looked for {', '.join(FOLDER_EXTENSIONS)})"))
            out.extend((str(f), None) for f in files)
        elif p.exists() or p.is_symlink():
            out.append((str(raw), None))
        else:
            out.append((str(raw), "no such file or folder"))
    return out


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------


@dataclass
class Predictor:
    """A loaded model: ``predict(uint8 images) -> float64 probabilities``."""

    kind: str
    class_names: list
    temperature: float
    source: str
    _fn: object = None
    keras_model: object = None
    ood_threshold: float | None = None  # flag inputs whose max calibrated probability is below it

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self._fn(np.asarray(images, dtype=np.float32))


def _uncalibrate(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Undo a folded-in temperature: softmax(z) is proportional to softmax(z / T) ** T."""
    logp = temperature * np.log(np.clip(probs, 1e-38, None))
    logp -= logp.max(axis=1, keepdims=True)
    e = np.exp(logp)
    return e / e.sum(axis=1, keepdims=True)


def _padded_batches(fn, images: np.ndarray) -> np.ndarray:
    outs = []
    for i in range(0, len(images), BATCH):
        chunk = images[i : i + BATCH]
        pad = np.zeros((BATCH, *chunk.shape[1:]), dtype=np.float32)
        pad[: len(chunk)] = chunk
        outs.append(np.asarray(fn(pad), dtype=np.float64)[: len(chunk)])
    return np.concatenate(outs) if outs else np.zeros((0, 0))


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the C++ runtime's informational lines on file descriptor 2 (Python errors still raise)."""
    try:
        saved = os.dup(2)
    except OSError:  # no usable fd 2
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def tflite_interpreter(path: str | os.PathLike):
    """A LiteRT interpreter for a ``.tflite`` file, tensors allocated (``tf.lite`` when LiteRT is missing).

    Args:
        path: the ``.tflite`` file.

    Returns:
        The interpreter.

    Raises:
        ModelError: neither LiteRT nor TensorFlow is installed, or the file is not a TFLite model.
    """
    # Imported here, not at the top: the TFLite path loads neither Keras nor TensorFlow when LiteRT is there.
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            import tensorflow as tf
        except ImportError as exc:
            raise ModelError(f"{path}: running .tflite needs ai-edge-litert (pip install ai-edge-litert) "
                             "or TensorFlow") from exc
        Interpreter = tf.lite.Interpreter
    try:
        # LiteRT logs "INFO: Created TensorFlow Lite XNNPACK delegate" on fd 2; tf.lite warns that it is deprecated
        with _quiet_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_path=str(path))
            interpreter.allocate_tensors()
    except Exception as exc:
        raise ModelError(f"{path}: not a readable TFLite model ({type(exc).__name__}: {exc})") from exc
    return interpreter


def _load_tflite(path: Path, calibrated: bool) -> Predictor:
    meta = read_export_metadata(path)
    interpreter = tflite_interpreter(path)
    inp = interpreter.get_input_details()[0]
    out = interpreter.get_output_details()[0]
    if tuple(inp["shape"][1:]) != (IMAGE_SIZE, IMAGE_SIZE, 3):
        raise ModelError(f"{path}: the model takes {list(inp['shape'])}, not 32x32 RGB images")

    def quantize(x, detail):
        scale, zero = detail["quantization"]
        if detail["dtype"] in (np.float32, np.float16):
            return x.astype(detail["dtype"])
        info = np.iinfo(detail["dtype"])
        return np.clip(np.rint(x / scale + zero), info.min, info.max).astype(detail["dtype"])

    def run_one(image):
        interpreter.set_tensor(inp["index"], quantize(image[None], inp))
        interpreter.invoke()
        y = interpreter.get_tensor(out["index"])
        if out["dtype"] not in (np.float32, np.float16):
            scale, zero = out["quantization"]
            y = (y.astype(np.float64) - zero) * scale
        return np.asarray(y, dtype=np.float64)[0]

    temperature = float(meta.get("temperature", 1.0))

    def fn(images):
        probs = np.stack([run_one(img) for img in images]) if len(images) else np.zeros((0, 0))
        return probs if calibrated or temperature == 1.0 else _uncalibrate(probs, temperature)

    num = int(out["shape"][-1])
    return Predictor("tflite", _class_names(meta, num, path), temperature if calibrated else 1.0, str(path), fn,
                     ood_threshold=_threshold(meta, calibrated))


def _class_names(meta: dict, num: int, path: Path) -> list:
    names = meta.get("class_names")
    if names is None:
        if num != len(CLASS_NAMES):
            raise ModelError(f"{path}: the model has {num} outputs and no metadata naming them; export it again")
        names = list(CLASS_NAMES)
    if len(names) != num:
        raise ModelError(f"{path}: the metadata names {len(names)} classes but the model has {num} outputs")
    return list(names)


def _load_saved_model(path: Path, calibrated: bool) -> Predictor:
    meta = read_export_metadata(path)
    try:
        import tensorflow as tf  # here, not at the top: only SavedModels need it (see tflite_interpreter)
    except ImportError as exc:
        raise ModelError(f"{path}: a SavedModel needs TensorFlow; install tensorflow.") from exc
    try:
        loaded = tf.saved_model.load(str(path))
        serve = loaded.serve if hasattr(loaded, "serve") else loaded.signatures["serving_default"]
    except Exception as exc:
        raise ModelError(f"{path}: not a readable SavedModel ({type(exc).__name__})") from exc
    temperature = float(meta.get("temperature", 1.0))

    def call(batch):
        y = serve(tf.constant(batch))
        if isinstance(y, dict):
            y = next(iter(y.values()))
        return y.numpy()

    def fn(images):
        probs = _padded_batches(call, images)
        return probs if calibrated or temperature == 1.0 else _uncalibrate(probs, temperature)

    num = int(np.asarray(call(np.zeros((BATCH, IMAGE_SIZE, IMAGE_SIZE, 3), np.float32))).shape[-1])
    return Predictor("saved_model", _class_names(meta, num, path), temperature if calibrated else 1.0, str(path), fn,
                     ood_threshold=_threshold(meta, calibrated))


def _load_keras(path: Path, calibrated: bool) -> Predictor:
    # Imported here, not at the top, so that the TFLite path never imports Keras (these modules do).
    from visiondl_keras.evaluation.calibration import apply_temperature, load_temperature, read_calibration
    from visiondl_keras.models import load_checkpoint

    checkpoint, _ = resolve_checkpoint(path)
    model = load_checkpoint(checkpoint)
    temperature = load_temperature(checkpoint) if calibrated else 1.0
    num = int(model.output_shape[-1])

    def fn(images):
        logits = _padded_batches(model.predict_on_batch, images)
        return apply_temperature(logits, temperature).astype(np.float64) if len(images) else logits

    names = list(CLASS_NAMES) if num == len(CLASS_NAMES) else [str(i) for i in range(num)]
    return Predictor("keras", names, temperature, str(checkpoint), fn, keras_model=model,
                     ood_threshold=_threshold(read_calibration(checkpoint) or {}, calibrated))


def _threshold(record: dict, calibrated: bool) -> float | None:
    """The out-of-distribution threshold of a sidecar or export metadata (it applies to calibrated
    probabilities only, so not with ``--no-calibration``)."""
    rule = record.get("ood") if isinstance(record, dict) else None
    if not calibrated or not isinstance(rule, dict) or not isinstance(rule.get("threshold"), (int, float)):
        return None
    return float(rule["threshold"])


def default_model_candidates(need_gradients: bool = False) -> list[Path]:
    """Where the default model is looked for after ``$VISIONDL_MODEL``, in order.

    Args:
        need_gradients: only ``.keras`` files (for Grad-CAM).

    Returns:
        In ``./artifacts/checkpoints/``, then the same under the source checkout the package was
        imported from (only in a checkout: a folder with ``pyproject.toml``), then in the package
        data folder ``visiondl_keras/deploy/default_model/``: ``scratch_airbench94.tflite`` (unless
        ``need_gradients``) and ``scratch_airbench94.keras``.
    """
    names = [DEFAULT_MODEL_NAME] if need_gradients else [DEFAULT_TFLITE_NAME, DEFAULT_MODEL_NAME]
    folders = [Path.cwd() / "artifacts" / "checkpoints"]
    if (SOURCE_ROOT / "pyproject.toml").is_file() and SOURCE_ROOT / "artifacts" / "checkpoints" not in folders:
        folders.append(SOURCE_ROOT / "artifacts" / "checkpoints")
    folders.append(PACKAGED_MODEL_DIR)
    return [folder / name for folder in folders for name in names]


def find_default_model(need_gradients: bool = False) -> Path:
    """The default inference model: ``$VISIONDL_MODEL``, else the first of :func:`default_model_candidates`.

    Args:
        need_gradients: look for a ``.keras`` checkpoint only (Grad-CAM).

    Returns:
        The model's path.

    Raises:
        ModelError: ``$VISIONDL_MODEL`` names a missing path, or it is unset and no candidate exists.

    Example:
        >>> find_default_model().name  # doctest: +SKIP
        'scratch_airbench94.keras'
    """
    env = os.environ.get(MODEL_ENV)
    if env:
        path = Path(env).expanduser()
        if not path.exists():
            raise ModelError(f"${MODEL_ENV}={env}: no such model; point it at a .keras checkpoint, a run directory, "
                             "a SavedModel folder or a .tflite file, or unset it.")
        return path
    candidates = default_model_candidates(need_gradients)
    found = next((c for c in candidates if c.is_file()), None)
    if found is None:
        raise ModelError(f"no default model: ${MODEL_ENV} is unset and none of {', '.join(map(str, candidates))} "
                         "exists; pass a model (--model PATH) or set $VISIONDL_MODEL.")
    return found


def load_predictor(model: str | os.PathLike | None = None, calibrated: bool = True,
                   need_gradients: bool = False) -> Predictor:
    """Load a ``.keras`` checkpoint / run directory, a SavedModel folder or a ``.tflite`` file.

    Args:
        model: the path (default: :func:`find_default_model`).
        calibrated: apply the stored temperature (``False``: T = 1).
        need_gradients: without ``model``, pick the default ``.keras`` checkpoint (Grad-CAM).

    Returns:
        A :class:`Predictor`.

    Raises:
        ModelError: the model is missing, of an unknown format or cannot be loaded.

    Example:
        >>> predictor = load_predictor("model_int8.tflite")  # doctest: +SKIP
        >>> predictor.predict(np.zeros((1, 32, 32, 3), np.uint8)).shape  # doctest: +SKIP
        (1, 10)
    """
    path = Path(model) if model is not None else find_default_model(need_gradients)
    if not path.exists():
        raise ModelError(f"{path}: model not found; pass a .keras checkpoint, a run directory, a SavedModel folder "
                         "or a .tflite file.")
    if path.suffix == ".tflite":
        return _load_tflite(path, calibrated)
    if path.is_dir() and (path / "saved_model.pb").is_file():
        return _load_saved_model(path, calibrated)
    if path.is_file() and path.suffix != ".keras":
        raise ModelError(f"{path}: unknown model format; expected .keras, .tflite or a SavedModel folder.")
    return _load_keras(path, calibrated)


# --------------------------------------------------------------------------------------------
# Classifying files
# --------------------------------------------------------------------------------------------


def classify(paths, predictor: Predictor, top_k: int = 3) -> list[dict]:
    """Classify the images ``paths`` names (folders expanded).

    Args:
        paths: image files and folders (searched recursively).
        predictor: from :func:`load_predictor`.
        top_k: labels per image (at most the number of classes).

    Returns:
        One dict per input, in order: ``{"path", "predictions": [{"label", "probability"}, ...],
        "error": None or a message}``; probabilities are rounded to 6 decimals. When the model
        carries an out-of-distribution threshold (:mod:`visiondl_keras.evaluation.ood`), a classified
        input also gets ``"ood"`` (True: it looks unlike CIFAR-10, treat the answer with caution) and
        ``"ood_score"`` (its maximum calibrated probability) and ``"ood_threshold"``. A classified
        input also carries its preprocessed image as ``"_image"`` (for
        :func:`write_gradcam_overlays`; drop it before serialising).

    Raises:
        ConfigError: ``top_k`` is not a positive integer.

    Example:
        >>> classify(["samples/"], load_predictor(), top_k=1)[0]["predictions"]  # doctest: +SKIP
        [{'label': 'airplane', 'probability': 0.93}]
    """
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ConfigError(f"top_k must be a positive integer, got {top_k!r}.")
    results, images, where = [], [], []
    for path, error in expand_paths(paths):
        if error is None:
            try:
                images.append(load_image(path))
                where.append(len(results))
            except InputError as exc:
                error = str(exc)
        results.append({"path": path, "predictions": [], "error": error})
    if images:
        probs = predictor.predict(np.stack(images))
        k = min(top_k, probs.shape[1])
        for row, i, image in zip(probs, where, images):
            order = np.argsort(-row, kind="stable")[:k]
            results[i]["predictions"] = [
                {"label": predictor.class_names[j], "probability": round(float(row[j]), 6)} for j in order
            ]
            if predictor.ood_threshold is not None:
                score = float(row.max())
                results[i].update(ood=bool(score < predictor.ood_threshold), ood_score=round(score, 6),
                                  ood_threshold=round(predictor.ood_threshold, 6))
            results[i]["_image"] = image
    return results


def write_gradcam_overlays(results: list[dict], predictor: Predictor, out_dir: str | os.PathLike,
                           scale: int = 8) -> list[Path]:
    """Write ``<stem>_gradcam.png`` per classified image: its Grad-CAM map (predicted class) over
    the 32x32 input, upscaled ``scale`` times.

    Args:
        results: :func:`classify`'s output (with the ``"_image"`` entries); each classified one
            gets a ``"gradcam"`` entry with the file written.
        predictor: a predictor of a ``.keras`` model (exports have no gradients).
        out_dir: the folder to write into.
        scale: upscaling factor of the overlays (nearest neighbour).

    Returns:
        The files written.

    Raises:
        ConfigError: the predictor has no Keras model.
        ModelError: the model has no convolutional layer to explain.
    """
    if predictor.keras_model is None:
        raise ConfigError(f"{predictor.source}: Grad-CAM needs a .keras checkpoint (exported SavedModel/TFLite "
                          "models have no gradients).")
    # Imported here, not at the top, so that the TFLite path never imports Keras (gradcam does).
    from visiondl_keras.evaluation.gradcam import gradcam, overlay_heatmap

    ok = [r for r in results if r["error"] is None]
    if not ok:
        return []
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = np.stack([r["_image"] for r in ok])
    heatmaps = gradcam(predictor.keras_model, images)
    used: set[str] = set()
    size = IMAGE_SIZE * scale
    written = []
    for r, img, heat in zip(ok, images, heatmaps):
        stem = Path(r["path"]).stem
        name, n = f"{stem}_gradcam.png", 1
        while name in used:
            name, n = f"{stem}_{n}_gradcam.png", n + 1
        used.add(name)
        big = np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.NEAREST))
        buf = io.BytesIO()
        Image.fromarray(overlay_heatmap(big, heat)).save(buf, format="PNG")
        written.append(atomic_write_bytes(out_dir / name, buf.getvalue()))
        r["gradcam"] = str(written[-1])
    return written
