"""The classroom dashboard (``python -m visiondl_keras dashboard``).

Unit tests of the functions behind the page (upload validation, the temperature slider's metrics,
confusion-matrix cells, perturbations, run curves), then the real server in a subprocess: driven
through ``gradio_client`` (a prediction, a clear error for a bad file) and in headless Chromium
(``tests/browser.py``: every tab renders, an upload shows a prediction, and no request leaves
127.0.0.1). The browser test saves screenshots of a synthetic (non-CIFAR) upload and of plots to
``_build/screenshots/dashboard/``; with ``VISIONDL_UPDATE_SCREENSHOTS=1`` it refreshes the book's copies in
``artifacts/figures/dashboard/`` instead. Everything is skipped with its reason when Gradio is not
installed (``pip install -e .[dashboard]``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("gradio", reason="the dashboard needs Gradio: pip install -e .[dashboard]")

from visiondl_keras.dashboard import analysis  # noqa: E402
from visiondl_keras.deploy import predictor as predictor_module  # noqa: E402
from visiondl_keras.deploy.predictor import InputError  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
CHECKPOINTS = ROOT / "artifacts" / "checkpoints"
MODELS = [CHECKPOINTS / "scratch_airbench94.keras", CHECKPOINTS / "scratch_airbench94.tflite"]
# The book's copies are refreshed only on request, so that `make test` leaves the checkout unchanged.
SCREENSHOTS = (ROOT / "artifacts" / "figures" / "dashboard" if os.environ.get("VISIONDL_UPDATE_SCREENSHOTS") == "1"
               else ROOT / "_build" / "screenshots" / "dashboard")
TABS = ("Predict", "Errors", "Calibration", "Robustness", "Runs")


def synthetic_image(path: Path, size: int = 96) -> Path:
    """A drawn picture (no dataset pixels): two colour fields and a square."""
    im = np.zeros((size, size, 3), np.uint8)
    im[:, : size // 2] = (200, 40, 40)
    im[:, size // 2 :] = (50, 60, 70)
    im[size // 3 : 2 * size // 3, size // 3 : 2 * size // 3] = (20, 200, 90)
    Image.fromarray(im).save(path)
    return path


# ------------------------------------------------------------------------------------------------
# Upload validation
# ------------------------------------------------------------------------------------------------


def test_a_good_upload_becomes_the_models_input(tmp_path):
    image, notes = analysis.validate_upload(synthetic_image(tmp_path / "ok.png"))
    assert image.shape == (32, 32, 3) and image.dtype == np.uint8
    assert tuple(image[16, 2]) == (200, 40, 40) and tuple(image[16, 16]) == (20, 200, 90)
    assert notes == []


@pytest.mark.parametrize("content, message", [
    (b"this is not an image", "not an image file"),
    (b"", "empty file"),
])
def test_a_file_that_is_not_an_image_is_refused_with_a_sentence(tmp_path, content, message):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        analysis.validate_upload(path)


def test_no_file_is_refused():
    with pytest.raises(InputError, match="no file"):
        analysis.validate_upload(None)


def test_a_tiny_image_is_refused(tmp_path):
    path = tmp_path / "dot.png"
    Image.new("RGB", (1, 1), (255, 0, 0)).save(path)
    with pytest.raises(InputError, match=r"1x1 pixels, too small"):
        analysis.validate_upload(path)


def test_a_huge_image_is_refused_before_decoding(tmp_path, monkeypatch):
    monkeypatch.setattr(predictor_module, "MAX_PIXELS", 100 * 100)
    path = tmp_path / "big.png"
    Image.new("L", (200, 150)).save(path)
    with pytest.raises(InputError, match="200x150 = 30,000 pixels, over the 10,000-pixel limit"):
        analysis.validate_upload(path)


def test_a_large_file_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(analysis, "MAX_UPLOAD_BYTES", 1000)
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    with pytest.raises(InputError, match="MB, over the"):
        analysis.validate_upload(path)


def test_an_animated_gif_is_classified_by_its_first_frame_and_says_so(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (32, 32), c) for c in ((255, 0, 0), (0, 0, 255), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    image, notes = analysis.validate_upload(path)
    assert tuple(image[0, 0]) == (255, 0, 0)
    assert any("animated image (3 frames)" in n for n in notes)


# ------------------------------------------------------------------------------------------------
# Calibration slider, confusion cells, perturbations, runs
# ------------------------------------------------------------------------------------------------


def _logits(n=600, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    logits = rng.normal(0, 1, (n, 10))
    logits[np.arange(n), labels] += 2.0
    return 3.0 * logits, labels  # over-confident: the best temperature is above 1


def test_temperature_report_matches_the_calibration_module():
    from visiondl_keras.evaluation.calibration import (
        expected_calibration_error,
        fit_temperature,
        negative_log_likelihood,
        temperature_nll,
    )
    from visiondl_keras.evaluation.metrics import softmax

    logits, labels = _logits()
    at_one = analysis.temperature_report(logits, labels, 1.0)
    assert at_one["ece"] == pytest.approx(expected_calibration_error(softmax(logits), labels), abs=1e-6)
    assert at_one["nll"] == pytest.approx(negative_log_likelihood(softmax(logits), labels), rel=1e-5)
    grid = np.round(np.arange(0.5, 6.0, 0.05), 2)
    nlls = [analysis.temperature_report(logits, labels, t)["nll"] for t in grid]
    for t, nll in zip(grid[::20], nlls[::20]):
        assert nll == pytest.approx(temperature_nll(logits, labels, t), rel=1e-4)
    assert grid[int(np.argmin(nlls))] == pytest.approx(fit_temperature(logits, labels), abs=0.06)
    best = analysis.temperature_report(logits, labels, fit_temperature(logits, labels))
    assert best["ece"] < at_one["ece"] and best["accuracy"] == at_one["accuracy"]


def test_cell_examples_are_the_cell_most_confident_first():
    probs = np.array([[0.7, 0.3], [0.4, 0.6], [0.1, 0.9], [0.2, 0.8], [0.9, 0.1]])
    labels = np.array([0, 0, 0, 1, 1])
    assert analysis.cell_examples(probs, labels, true=0, predicted=1).tolist() == [2, 1]
    assert analysis.cell_examples(probs, labels, true=1, predicted=1).tolist() == [3]
    assert analysis.cell_examples(probs, labels, true=1, predicted=0, limit=0).tolist() == []
    cm = analysis.confusion(np.log(probs), labels, 2)
    assert np.asarray(cm["counts"]).tolist() == [[1, 2], [1, 1]] and cm["accuracy"] == pytest.approx(0.4)


def test_perturbations_change_the_image_by_the_asked_amount():
    image = np.full((32, 32, 3), 128, np.uint8)
    noisy = analysis.perturb(image, "gaussian noise", sigma=8.0)
    assert 6.0 < np.std(noisy.astype(float) - 128) < 10.0
    assert np.array_equal(analysis.perturb(image, "gaussian noise", sigma=0.0), image)
    dark = analysis.perturb(image, "corruption", corruption="contrast", severity=5)
    assert dark.shape == image.shape and np.std(dark) <= np.std(image) + 1
    with pytest.raises(Exception, match="FGSM needs gradients"):
        analysis.perturb(image, "FGSM", epsilon=4.0)
    with pytest.raises(Exception, match="unknown perturbation"):
        analysis.perturb(image, "blur")


def test_gradcam_overlays_stand_side_by_side():
    from visiondl_keras.dashboard.views import side_by_side

    a, b = np.zeros((4, 3, 3), np.uint8), np.full((2, 2, 3), 7, np.uint8)
    row = side_by_side([a, b], gap=1)
    assert row.shape == (4, 6, 3)
    assert (row[:, :3] == 0).all() and (row[:, 3] == 255).all() and (row[:2, 4:] == 7).all() and (row[2:, 4:] == 255).all()
    assert side_by_side([]) is None


def test_runs_are_found_and_their_curves_overlaid(tmp_path):
    for name, accs in (("a", (0.5, 0.6)), ("b", (0.4, 0.7, 0.8))):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        rows = "".join(f"{i + 1},{a},\n" for i, a in enumerate(accs))
        (run / "history.csv").write_text("epoch,val_accuracy,momentum\n" + rows)
    runs = analysis.find_runs([tmp_path / "runs", tmp_path / "missing"], base=tmp_path)
    assert list(runs) == ["runs/a", "runs/b"]
    cols = analysis.overlaid_curves({k: analysis.read_history(v) for k, v in runs.items()}, "val_accuracy")
    assert cols["run"] == ["runs/a"] * 2 + ["runs/b"] * 3
    assert cols["epoch"] == [1, 2, 1, 2, 3] and cols["val_accuracy"] == [0.5, 0.6, 0.4, 0.7, 0.8]


def test_the_shipped_models_are_found_in_the_comparison_order(tmp_path):
    from visiondl_keras.dashboard.resources import discover_models

    folder = tmp_path / "artifacts" / "checkpoints"
    folder.mkdir(parents=True)
    for name in ("model_int8.tflite", "transfer_b.keras", "scratch_airbench94.tflite", "other.keras",
                 "scratch_airbench94.keras", "transfer_a.keras"):
        (folder / name).write_bytes(b"x")
    assert [p.name for p in discover_models(tmp_path)] == [
        "scratch_airbench94.keras", "scratch_airbench94.tflite", "transfer_a.keras", "transfer_b.keras",
        "model_int8.tflite"]


@pytest.fixture
def quiet_env(monkeypatch):
    """The variables the dashboard sets before importing Gradio, restored after the test."""
    for name, value in (("GRADIO_ANALYTICS_ENABLED", "False"), ("HF_HUB_OFFLINE", "1"), ("MPLBACKEND", "Agg"),
                        ("TF_CPP_MIN_LOG_LEVEL", "3")):
        monkeypatch.setenv(name, value)


def test_command_errors(tmp_path, capsys, quiet_env):
    from visiondl_keras.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--port", "70000"])
    assert exc.value.code == 2 and "a port is between 1 and 65535, got 70000" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["dashboard", "--subset", "-1"])
    assert exc.value.code == 2 and "must be 0 (all) or a positive number, got -1" in capsys.readouterr().err
    missing = tmp_path / "missing.keras"
    assert main(["dashboard", "--model", str(missing), "--port", str(_free_port())]) == 1
    assert capsys.readouterr().err.strip().splitlines() == [
        f"error: {missing}: model not found; pass a .keras checkpoint, a SavedModel folder or a .tflite file."]


# ------------------------------------------------------------------------------------------------
# The server
# ------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    missing = [p.name for p in MODELS if not p.is_file()]
    if missing:
        pytest.skip(f"the shipped models are missing: {missing}")
    port = _free_port()
    cmd = [sys.executable, "-m", "visiondl_keras", "dashboard", "--port", str(port), "--subset", "300", "--quiet"]
    for model in MODELS:
        cmd += ["--model", str(model)]
    log_path = tmp_path_factory.mktemp("dashboard") / "server.log"
    log = open(log_path, "w")  # a file, not a pipe: a full pipe would block the server
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    url, deadline = f"http://127.0.0.1:{port}/", time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the dashboard exited with {proc.returncode}: {log_path.read_text()[-3000:]}")
        try:
            if urllib.request.urlopen(url, timeout=2).status == 200:
                break
        except OSError:
            time.sleep(0.3)
    else:
        proc.kill()
        pytest.fail("the dashboard did not answer within 120 s")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()
    # No exception escaped the dashboard's own code (a browser closing a download mid-stream may leave a
    # traceback of the web server's transport in the log; that one is not the dashboard's).
    text = log_path.read_text()
    assert f"visiondl_keras{os.sep}" not in text, text[-3000:]


@pytest.mark.slow
def test_client_gets_a_prediction_and_a_clear_error_for_a_bad_file(server, tmp_path):
    from gradio_client import Client, handle_file

    client = Client(server, verbose=False)
    message, _, _, _, record = client.predict(handle_file(str(synthetic_image(tmp_path / "synthetic.png"))), False,
                                              True, 3, api_name="/predict_upload")
    assert "synthetic.png" in message
    answers = {a["model"]: a for a in record["answers"]}
    assert set(answers) == {p.name for p in MODELS}
    for a in answers.values():
        probs = [p["probability"] for p in a["predictions"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert a["temperature"] != 1.0 and isinstance(a["ood"], bool)
    keras_top = answers["scratch_airbench94.keras"]["predictions"][0]
    tflite_top = answers["scratch_airbench94.tflite"]["predictions"][0]
    assert keras_top["label"] == tflite_top["label"]
    bad = tmp_path / "notes.png"
    bad.write_text("not an image")
    message, preview, _, _, record = client.predict(handle_file(str(bad)), False, True, 3, api_name="/predict_upload")
    assert message == "**This file cannot be classified:** not an image file Pillow can read."
    assert preview is None and record == {"error": "not an image file Pillow can read"}


def _click(page, text: str, selector: str = "button") -> None:
    """Click the element with this text once it is rendered (a tab's content appears when it is opened)."""
    page.wait_for(f"""(() => {{
        const el = Array.from(document.querySelectorAll({selector!r})).find(b => b.innerText.trim() === {text!r});
        if (el) el.click();
        return !!el; }})()""", timeout=30)


def _screenshot(page, name: str) -> Path:
    """A screenshot for the book, saved as a 256-colour PNG (a fraction of the size of a full-colour one)."""
    path = page.screenshot(SCREENSHOTS / f"{name}.png")
    Image.open(path).convert("RGB").quantize(256).save(path, optimize=True)
    return path


def _visible_image_count(page, label: str) -> str:
    return f"""Array.from(document.querySelectorAll('img')).filter(i => i.offsetParent !== null
        && i.naturalWidth > 0 && i.closest('.block') && i.closest('.block').innerText.includes({label!r})).length"""


@pytest.mark.slow
@pytest.mark.integration
def test_every_tab_renders_an_upload_is_answered_and_nothing_leaves_localhost(server, mirror, tmp_path):
    browser = pytest.importorskip("browser", reason="tests/browser.py drives Chromium")
    if browser.find_chromium() is None:
        pytest.skip("no Chromium found: install it (Debian: apt-get install chromium) or set CHROMIUM")
    pytest.importorskip("tornado", reason="tornado (installed with Jupyter) drives Chromium's DevTools websocket")
    upload = synthetic_image(tmp_path / "synthetic.png")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with browser.launch_chromium() as b:
        page = b.page
        page.navigate(server)
        page.wait_for("document.querySelectorAll('button[role=tab]').length >= 5")
        tabs = page.evaluate("Array.from(document.querySelectorAll('button[role=tab]')).map(b => b.innerText.trim())")
        assert tuple(tabs) == TABS
        page.set_files("input[type=file]", [upload])
        answers = page.wait_for("(() => { const el = document.querySelector('#predict-answers');"
                                " return el && el.innerText.includes('%') ? el.innerText : null; })()", timeout=120)
        assert "scratch_airbench94.keras" in answers and "scratch_airbench94.tflite" in answers
        page.wait_for(_visible_image_count(page, "model input") + " >= 1")
        _screenshot(page, "predict")

        _click(page, "Errors", "button[role=tab]")
        _click(page, "Compute the confusion matrix")
        page.wait_for(_visible_image_count(page, "confusion matrix") + " >= 1", timeout=120)
        assert "accuracy" in page.evaluate("document.body.innerText")
        _screenshot(page, "errors")  # before a cell is chosen: no test images on it
        dog, cat = 5, 3  # choosing the cell (true dog, predicted cat) shows its images
        cell = f'[data-testid="cell-{dog}-{cat + 1}"]'
        count = int(page.wait_for(f"(document.querySelector('{cell}') || {{}}).innerText"))
        page.click(cell)
        note = f"{count} misclassified image(s) of class dog predicted as cat; showing {min(count, 24)}."
        page.wait_for(f"document.body.innerText.includes({note!r})", timeout=60)
        if count:
            # gallery thumbnails load lazily (below the fold they may not be decoded yet): count their sources
            page.wait_for(f"""Array.from(document.querySelectorAll('.block')).filter(b => b.innerText.includes(
                'images of the cell')).map(b => b.querySelectorAll('img[src]').length).reduce((a, c) => Math.max(a, c), 0)
                >= {min(count, 24)}""")

        _click(page, "Calibration", "button[role=tab]")
        _click(page, "Compute")
        page.wait_for(_visible_image_count(page, "at the slider") + " >= 1", timeout=120)
        assert "ECE" in page.evaluate("document.body.innerText")
        _screenshot(page, "calibration")

        _click(page, "Robustness", "button[role=tab]")
        _click(page, "Apply")
        page.wait_for(_visible_image_count(page, "perturbed") + " >= 1", timeout=120)
        assert "perturbed" in page.evaluate("document.body.innerText")
        for label in ("accuracy under noise and attacks", "accuracy per corruption and severity"):
            page.wait_for(_visible_image_count(page, label) + " >= 1", timeout=60)
        _screenshot(page, "robustness")

        _click(page, "Runs", "button[role=tab]")
        page.wait_for("document.querySelector('canvas, svg.marks, .vega-embed') !== null", timeout=60)
        page.settle(1.0)
        _screenshot(page, "runs")

        _click(page, "Predict", "button[role=tab]")  # a bad upload is answered in the page
        bad = tmp_path / "notes.png"
        bad.write_text("not an image")
        page.click('button[aria-label="Clear"]')  # the file input returns once the first upload is cleared
        page.set_files("input[type=file]", [bad])
        page.wait_for("document.querySelector('#predict-message').innerText.includes("
                      "'This file cannot be classified: not an image file Pillow can read.')", timeout=60)

        page.settle(0.5)
        outside = [u for u in page.requests if urllib.parse.urlsplit(u).scheme not in ("data", "blob")
                   and urllib.parse.urlsplit(u).hostname != "127.0.0.1"]
        assert page.requests and not outside, f"requests left 127.0.0.1: {outside[:10]}"
        assert not page.exceptions, page.exceptions
    for name in ("predict", "errors", "calibration", "robustness", "runs"):
        shot = SCREENSHOTS / f"{name}.png"
        assert shot.stat().st_size > 5_000, f"{shot} looks blank"
