"""Export benchmark: file size, single-image latency and parity of every export format, and the
inference CLI's cold-start time with a ``.keras`` checkpoint vs a ``.tflite`` file.

Formats: the Keras checkpoint, the SavedModel and the TFLite files (float32, float16, dynamic-range,
int8), all with the checkpoint's temperature folded in. Parity: max |probability difference| against
the calibrated Keras model on 256 test images, top-1 agreement on 1,000 (stratified) test images.
Latency: one image per call after a warm-up, median and 90th percentile. Cold start: wall time of
``python -m visiondl_keras.infer sample.png --model M`` (a test image) in a fresh process, median of a few runs.

Usage::

    python benchmarks/export_benchmark.py                       # the reference checkpoint
    python benchmarks/export_benchmark.py --checkpoint runs/x/best.keras --run-dir runs/x --out /tmp/b.json

Writes ``artifacts/metrics/export_benchmark.json`` (``--out``) and prints a table.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _latency(fn, image: np.ndarray, warmup: int, repeats: int) -> tuple[float, float]:
    for _ in range(warmup):
        fn(image)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(image)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), float(np.percentile(times, 90))


def _single_image_fn(kind: str, path: Path, model=None):
    """A function running the format's runtime on one (1, 32, 32, 3) float32 image."""
    if kind == "keras":
        return lambda x: np.asarray(model.predict_on_batch(x))
    if kind == "saved_model":
        import tensorflow as tf

        loaded = tf.saved_model.load(str(path))
        return lambda x: loaded.serve(tf.constant(x)).numpy()
    from visiondl_keras.deploy.predictor import tflite_interpreter

    interp = tflite_interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x):
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"])

    return run


def _cold_start(model: Path, image: Path, runs: int) -> float:
    times = []
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "visiondl_keras.infer", str(image), "--model", str(model)],
                           capture_output=True, text=True, cwd=ROOT, env=env)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            raise RuntimeError(f"infer failed with {model}: {r.stderr.strip()}")
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", default=str(ROOT / "artifacts" / "checkpoints" / "scratch_airbench94.keras"))
    p.add_argument("--run-dir", default=None, help="training run (config.json) for the split; default: the reference run")
    p.add_argument("--data", default=None)
    p.add_argument("--export-dir", default=None, help="where to write the exports (default: a temporary folder)")
    p.add_argument("--out", default=str(ROOT / "artifacts" / "metrics" / "export_benchmark.json"))
    p.add_argument("--repeats", type=int, default=200)
    p.add_argument("--cold-runs", type=int, default=3)
    p.add_argument("--representative", type=int, default=2000)
    args = p.parse_args(argv)

    from visiondl_keras.data.splits import stratified_subset
    from visiondl_keras.deploy.export import export_all, representative_from_run
    from visiondl_keras.deploy.predictor import load_predictor
    from visiondl_keras.evaluation.calibration import load_temperature
    from visiondl_keras.io import write_json
    from visiondl_keras.models import load_checkpoint
    from visiondl_keras.runs import read_run_file, resolve_checkpoint, split_settings

    run_dir = args.run_dir
    if run_dir is None and (ROOT / "artifacts" / "runs" / "scratch_airbench94" / "config.json").is_file() \
            and Path(args.checkpoint).resolve().parent == (ROOT / "artifacts" / "checkpoints").resolve():
        run_dir = ROOT / "artifacts" / "runs" / "scratch_airbench94"
    checkpoint, run_dir = resolve_checkpoint(args.checkpoint, run_dir)
    settings = split_settings(read_run_file(run_dir, "config.json"), None, None, args.data)
    model = load_checkpoint(checkpoint)
    temperature = load_temperature(checkpoint)

    from visiondl_keras.data.splits import load_run_splits as load_splits

    splits = load_splits(settings, progress=False)
    x_test = splits.x_test[stratified_subset(splits.y_test, 1000, seed=0)]
    rep = representative_from_run(settings, args.representative)
    tmp = tempfile.TemporaryDirectory(prefix="visiondl-export-bench-")
    export_dir = Path(args.export_dir) if args.export_dir else Path(tmp.name)
    t = time.perf_counter()
    paths = export_all(model, export_dir, temperature, rep, source=str(checkpoint), log=lambda *a: None)
    export_s = time.perf_counter() - t

    formats = [("keras", checkpoint)] + list(paths.items())
    reference = load_predictor(checkpoint).predict(x_test)
    one = x_test[:1].astype(np.float32)
    rows = []
    for name, path in formats:
        kind = "keras" if name == "keras" else ("saved_model" if name == "saved_model" else "tflite")
        probs = reference if name == "keras" else load_predictor(path).predict(x_test)
        med, p90 = _latency(_single_image_fn(kind, Path(path), model), one, warmup=10, repeats=args.repeats)
        rows.append({
            "name": name,
            "path": Path(path).name,
            "size_bytes": _size(Path(path)),
            "latency_ms_median": round(med, 3),
            "latency_ms_p90": round(p90, 3),
            "max_abs_dprob": float(np.abs(probs[:256] - reference[:256]).max()),
            "top1_agreement": float(np.mean(probs.argmax(1) == reference.argmax(1))),
        })

    from PIL import Image

    sample = Path(tempfile.mkdtemp(prefix="visiondl-sample-")) / "sample.png"
    Image.fromarray(np.asarray(x_test[0], dtype=np.uint8)).resize((128, 128), Image.Resampling.NEAREST).save(sample)
    cold = {"keras": _cold_start(checkpoint, sample, args.cold_runs),
            "saved_model": _cold_start(paths["saved_model"], sample, args.cold_runs),
            "tflite_float32": _cold_start(paths["tflite_float32"], sample, args.cold_runs)}
    try:
        import ai_edge_litert  # noqa: F401

        tflite_runtime = "ai-edge-litert (LiteRT)"
    except ImportError:
        tflite_runtime = "tf.lite"
    result = {
        "checkpoint": os.path.relpath(checkpoint, ROOT),
        "temperature": temperature,
        "device": f"{os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}",
        "load_average_at_end": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "tflite_runtime": tflite_runtime,
        "parity_images": 256,
        "agreement_images": int(len(x_test)),
        "latency": f"one image per call, median of {args.repeats} after 10 warm-up calls",
        "export_seconds": round(export_s, 1),
        "formats": rows,
        "cli_cold_start_s": {k: round(v, 2) for k, v in cold.items()},
        "cli_cold_start_runs": args.cold_runs,
    }
    write_json(args.out, result)
    print(f"{'format':<16}{'size':>10}{'latency ms':>12}{'p90 ms':>9}{'max|dp|':>10}{'top-1 agree':>13}")
    for r in rows:
        print(f"{r['name']:<16}{r['size_bytes'] / 1e6:>8.2f}MB{r['latency_ms_median']:>12.3f}{r['latency_ms_p90']:>9.3f}"
              f"{r['max_abs_dprob']:>10.1e}{100 * r['top1_agreement']:>12.2f}%")
    print(f"CLI cold start (median of {args.cold_runs} runs): "
          + ", ".join(f"{k} {v:.2f} s" for k, v in result["cli_cold_start_s"].items()))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
