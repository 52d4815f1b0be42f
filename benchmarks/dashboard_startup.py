"""How fast does the classroom dashboard start? Seconds from launching the command to the page answering,
then to the first prediction of an upload (the models load on first use).

Each repeat starts a fresh ``python -m visiondl_keras dashboard`` on a free port, polls its page until
it answers HTTP 200, then sends one synthetic (drawn, non-CIFAR) image through ``gradio_client``.
The load average before each repeat is recorded: on a busy machine every number grows.

    python benchmarks/dashboard_startup.py [--repeats 3] [--model PATH ...] [--out artifacts/metrics]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from visiondl_keras.io import write_json  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_start(models: list[str], image: Path, timeout: float = 180) -> dict:
    """Start the dashboard once; seconds to the page and to the first answer."""
    from gradio_client import Client, handle_file

    port = _free_port()
    cmd = [sys.executable, "-m", "visiondl_keras", "dashboard", "--port", str(port), "--quiet"]
    for m in models:
        cmd += ["--model", m]
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        while True:
            if proc.poll() is not None or time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"the dashboard did not start ({' '.join(cmd)})")
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.1)
        page_s = time.perf_counter() - t0
        client = Client(url, verbose=False)
        t1 = time.perf_counter()
        client.predict(handle_file(str(image)), False, True, 3, api_name="/predict_upload")
        first_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        client.predict(handle_file(str(image)), False, True, 3, api_name="/predict_upload")
        warm_s = time.perf_counter() - t2
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"page_s": round(page_s, 2), "first_prediction_s": round(first_s, 2), "warm_prediction_s": round(warm_s, 2),
            "load_average_before": round(load, 2)}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3, help="fresh starts to time (default 3)")
    p.add_argument("--model", action="append", help="models to serve (default: what the dashboard finds)")
    p.add_argument("--out", default=str(ROOT / "artifacts" / "metrics"), help="folder for dashboard_startup.json")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        image = Path(tmp) / "drawn.png"
        drawn = np.zeros((96, 96, 3), np.uint8)
        drawn[:, :48], drawn[32:64, 32:64] = (200, 40, 40), (20, 200, 90)
        Image.fromarray(drawn).save(image)
        runs = [one_start(args.model or [], image) for _ in range(args.repeats)]
    models = args.model or [str(m.relative_to(ROOT)) for m in _default_models()]
    result = {
        "description": "seconds from starting `python -m visiondl_keras dashboard` to the page answering HTTP 200, "
                       "then to the first and a second prediction of one uploaded image by every model (Grad-CAM on)",
        "models": models, "cpu_count": os.cpu_count(), "runs": runs,
        "page_s_median": float(np.median([r["page_s"] for r in runs])),
        "first_prediction_s_median": float(np.median([r["first_prediction_s"] for r in runs])),
    }
    print(f"{'start':>5} {'page s':>8} {'1st answer s':>13} {'2nd answer s':>13} {'load avg':>9}")
    for i, r in enumerate(runs, 1):
        print(f"{i:>5} {r['page_s']:>8.2f} {r['first_prediction_s']:>13.2f} {r['warm_prediction_s']:>13.2f} "
              f"{r['load_average_before']:>9.2f}")
    print(f"models: {', '.join(models)}; {os.cpu_count()} CPUs")
    write_json(Path(args.out) / "dashboard_startup.json", result)
    return result


def _default_models():
    from visiondl_keras.dashboard.resources import discover_models

    return discover_models(ROOT)


if __name__ == "__main__":
    main()
