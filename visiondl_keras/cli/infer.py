"""``python -m visiondl_keras.infer PATH [PATH ...]`` (also ``python -m visiondl_keras infer``).

Thin translation of the command line into :func:`visiondl_keras.deploy.predictor.load_predictor` and
:func:`~visiondl_keras.deploy.predictor.classify`; see that module for the models, preprocessing and errors.
Exit status: 0 all inputs classified, 1 some inputs failed, 2 usage error (bad arguments, or a model
that cannot be found or loaded).

This module imports neither Keras nor TensorFlow: with a ``.tflite`` model and LiteRT installed,
the command starts in well under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from visiondl_keras.cli.common import Parser
from visiondl_keras.deploy.predictor import MODEL_ENV, classify, load_predictor, write_gradcam_overlays
from visiondl_keras.errors import VisionDLError

DESCRIPTION = ("Classify images with a calibrated CIFAR-10 model. Exit status: 0 all classified, "
               "1 some inputs failed, 2 usage error.")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Declare the inference arguments (shared by ``python -m visiondl_keras.infer`` and the ``infer`` command)."""
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders (searched recursively)")
    p.add_argument("--model", help="a .keras checkpoint or run directory, a SavedModel folder or a .tflite file "
                   f"(default: ${MODEL_ENV}, else ./artifacts/checkpoints/scratch_airbench94.tflite or .keras "
                   "(.keras for --gradcam), else the model shipped with the package)")
    p.add_argument("--top-k", type=_positive_int, default=3, help="labels to show per image (default 3)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    p.add_argument("--gradcam", metavar="OUT_DIR", help="write a Grad-CAM overlay per image (.keras models only)")
    p.add_argument("--no-calibration", action="store_true", help="raw softmax probabilities (temperature 1)")


def _print_results(results: list[dict], as_json: bool) -> None:
    for r in results:
        r.pop("_image", None)
    if as_json:
        print(json.dumps(results, indent=2))
        return
    for r in results:
        if r["error"] is None:
            preds = ", ".join(f"{p['label']} {p['probability']:.4f}" for p in r["predictions"])
            extra = f"  [grad-cam: {r['gradcam']}]" if "gradcam" in r else ""
            if r.get("ood"):
                extra += (f"  [caution: unlike CIFAR-10 images (top probability {r['ood_score']:.2f} < "
                          f"{r['ood_threshold']:.2f}); the answer is one of the ten classes regardless]")
            print(f"{r['path']}: {preds}{extra}")


def run(args: argparse.Namespace) -> int:
    """Classify ``args.paths``; returns the exit status (0, 1 or 2)."""
    try:
        predictor = load_predictor(args.model, calibrated=not args.no_calibration,
                                   need_gradients=args.gradcam is not None)
    except VisionDLError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.gradcam is not None and predictor.keras_model is None:
        print("error: --gradcam needs a .keras checkpoint (exported SavedModel/TFLite models have no gradients)",
              file=sys.stderr)
        return 2
    results = classify(args.paths, predictor, args.top_k)
    failed = 0
    if args.gradcam is not None:
        try:
            write_gradcam_overlays(results, predictor, args.gradcam)
        except (VisionDLError, OSError) as exc:
            print(f"error: --gradcam: {exc}", file=sys.stderr)
            failed += 1
    for r in results:
        if r["error"] is not None:
            failed += 1
            print(f"error: {r['path']}: {r['error']}", file=sys.stderr)
    _print_results(results, args.json)
    sys.stdout.flush()
    return 1 if failed else 0


def register(subparsers) -> None:
    """Add the ``infer`` and ``samples`` commands."""
    p = subparsers.add_parser("infer", help="classify images with a calibrated model", description=DESCRIPTION)
    add_arguments(p)
    p.set_defaults(func=run)
    p = subparsers.add_parser("samples", help="write one example image per class (from your CIFAR-10 test split)",
                              description="Write the first test image of each class, enlarged with nearest-neighbour "
                              "sampling, as OUT/<class>.png: inputs for the infer command that map back exactly to "
                              "test images.")
    p.add_argument("--out", default="samples", help="the folder (default samples)")
    p.add_argument("--data", help="CIFAR-10 source (default: $VISIONDL_DATA, ./data, the Keras cache, then a download)")
    p.add_argument("--scale", type=_positive_int, default=4, help="enlargement factor (default 4: 128x128 images)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_write_samples)


def _write_samples(args) -> int:
    from visiondl_keras.data.samples import write_samples

    paths = write_samples(args.out, args.data, args.scale, progress=not args.quiet)
    print(f"wrote {len(paths)} images to {args.out}/ ({', '.join(p.name for p in paths)})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m visiondl_keras.infer``."""
    p = Parser(prog="python -m visiondl_keras.infer", description=DESCRIPTION)
    add_arguments(p)
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the inference command line; returns the exit status (0, 1 or 2)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return run(build_parser().parse_args(argv))
