"""The inference CLI: image modes, preprocessing, bad inputs, exit codes, model formats, determinism."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import visiondl_keras.deploy.predictor as infer
from visiondl_keras.cli.infer import main
from visiondl_keras.deploy.predictor import InputError, expand_paths, load_image, preprocess_image
from visiondl_keras.errors import ConfigError, ModelError

ROOT = Path(__file__).resolve().parents[1]
TEMPERATURE = 2.0


# --------------------------------------------------------------------------------------------
# Fixtures: a tiny calibrated checkpoint, its TFLite export, and images of every kind
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    from visiondl_keras.deploy.export import export_tflite
    from visiondl_keras.evaluation.calibration import save_temperature
    from visiondl_keras.models import build_simple_cnn

    root = tmp_path_factory.mktemp("infer_models")
    model = build_simple_cnn(width=4)
    w, b = model.get_layer("logits").get_weights()
    model.get_layer("logits").set_weights([w * 30, b])  # peaked, informative probabilities
    ckpt = root / "tiny.keras"
    model.save(ckpt)
    save_temperature(ckpt, TEMPERATURE)
    tflite = export_tflite(model, root / "tiny.tflite", "none", temperature=TEMPERATURE)
    return {"model": model, "keras": ckpt, "tflite": tflite, "root": root}


def _rgb(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3)).astype(np.uint8)


def _png_header_only(width, height) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (a decompression-bomb look-alike)."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    d = tmp_path_factory.mktemp("images")
    good = d / "good"
    good.mkdir()
    Image.fromarray(_rgb(32, 32, 1)).save(good / "a_rgb32.png")
    Image.fromarray(_rgb(120, 200, 2)).save(good / "b_wide.jpg", quality=90)
    Image.fromarray(_rgb(40, 40, 3)[..., 0], mode="L").save(good / "c_gray.png")
    (good / "sub").mkdir()
    Image.fromarray(_rgb(64, 64, 4)).convert("P").save(good / "sub" / "d_palette.gif")
    (good / ".hidden").mkdir()
    Image.fromarray(_rgb(32, 32, 5)).save(good / ".hidden" / "skip.png")
    (good / "notes.txt").write_text("not an image")
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.png").write_bytes(b"")
    full = good / "a_rgb32.png"
    (bad / "truncated.png").write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    jpg = (good / "b_wide.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(jpg[: len(jpg) // 3])
    (bad / "text.png").write_text("hello, I am not a PNG\n" * 20)
    (bad / "bomb.png").write_bytes(_png_header_only(20000, 20000))  # 400 Mpx: Pillow refuses it
    (bad / "large.png").write_bytes(_png_header_only(9000, 8000))  # 72 Mpx: over our limit
    empty_dir = d / "empty_dir"
    empty_dir.mkdir()
    no_images = d / "no_images"
    no_images.mkdir()
    (no_images / "readme.txt").write_text("nothing")
    return {"root": d, "good": good, "bad": bad, "empty_dir": empty_dir, "no_images": no_images}


# --------------------------------------------------------------------------------------------
# Preprocessing: every mode to 32x32 RGB, by one method
# --------------------------------------------------------------------------------------------


def test_32x32_rgb_is_unchanged():
    x = _rgb(32, 32)
    assert np.array_equal(preprocess_image(Image.fromarray(x)), x)


def test_nearest_upscaled_image_maps_back_exactly():
    x = _rgb(32, 32, 9)
    big = Image.fromarray(x).resize((128, 128), Image.Resampling.NEAREST)
    assert np.array_equal(preprocess_image(big), x)


def test_centre_crop_then_box_resize():
    x = _rgb(100, 300, 3)
    expected = np.asarray(Image.fromarray(x[:, 100:200]).resize((32, 32), Image.Resampling.BOX))
    assert np.array_equal(preprocess_image(Image.fromarray(x)), expected)
    tall = _rgb(90, 30, 4)
    out = preprocess_image(Image.fromarray(tall))
    assert np.array_equal(out, np.asarray(Image.fromarray(tall[30:60]).resize((32, 32), Image.Resampling.BOX)))
    tiny = preprocess_image(Image.fromarray(_rgb(8, 8)))
    assert tiny.shape == (32, 32, 3)


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Image.new("L", (40, 40), 77), [77, 77, 77]),
        (lambda: Image.new("1", (40, 40), 1), [255, 255, 255]),
        (lambda: Image.new("RGBA", (40, 40), (10, 20, 30, 0)), [255, 255, 255]),  # transparent -> white
        (lambda: Image.new("RGBA", (40, 40), (10, 20, 30, 255)), [10, 20, 30]),
        (lambda: Image.new("LA", (40, 40), (50, 255)), [50, 50, 50]),
        (lambda: Image.new("CMYK", (40, 40), (0, 0, 0, 0)), [255, 255, 255]),
        (lambda: Image.new("CMYK", (40, 40), (255, 0, 0, 0)), [0, 255, 255]),
        (lambda: Image.new("YCbCr", (40, 40), (128, 128, 128)), [128, 128, 128]),
        (lambda: Image.new("I;16", (40, 40), 65535), [255, 255, 255]),
        (lambda: Image.new("I;16", (40, 40), 32896), [128, 128, 128]),
        (lambda: Image.fromarray(np.full((40, 40), 65535, np.int32), mode="I"), [255, 255, 255]),
        (lambda: Image.fromarray(np.full((40, 40), 200, np.int32), mode="I"), [200, 200, 200]),
        (lambda: Image.fromarray(np.full((40, 40), 0.5, np.float32), mode="F"), [128, 128, 128]),
        (lambda: Image.new("RGB", (40, 40), (1, 2, 3)).convert("P", palette=Image.Palette.ADAPTIVE), [1, 2, 3]),
        (lambda: Image.new("HSV", (40, 40), (0, 0, 255)), [255, 255, 255]),
    ],
)
def test_every_mode_becomes_rgb(make, expected):
    out = preprocess_image(make())
    assert out.shape == (32, 32, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - expected).max() <= 1, (out[0, 0], expected)


def test_palette_with_transparency_and_16bit_png_files(tmp_path):
    p = Image.new("P", (32, 32), 0)
    p.putpalette([200, 0, 0, 0, 0, 255] + [0] * 762)
    p.paste(1, (16, 0, 32, 32))
    p.info["transparency"] = 1
    p.save(tmp_path / "p.png", transparency=1)
    out = load_image(tmp_path / "p.png")
    assert np.array_equal(out[0, 0], [200, 0, 0]) and np.array_equal(out[0, 31], [255, 255, 255])
    arr16 = (np.arange(32 * 32, dtype=np.uint16).reshape(32, 32) * 64).astype(np.uint16)
    Image.fromarray(arr16).save(tmp_path / "g16.png")
    out = load_image(tmp_path / "g16.png")
    assert np.abs(out[..., 0].astype(int) - np.rint(arr16.astype(np.float64) * 255 / 65535)).max() <= 1


def test_exif_orientation_is_applied(tmp_path):
    x = np.zeros((32, 64, 3), np.uint8)
    x[:, :32] = [255, 0, 0]  # left half red, right half blue
    x[:, 32:] = [0, 0, 255]
    im = Image.fromarray(x)
    exif = im.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    im.save(tmp_path / "rot.png", exif=exif.tobytes())
    out = load_image(tmp_path / "rot.png")
    displayed = np.asarray(Image.fromarray(x).transpose(Image.Transpose.ROTATE_270))  # 32 wide, 64 tall
    expected = np.asarray(Image.fromarray(displayed[16:48]).resize((32, 32), Image.Resampling.BOX))
    assert np.array_equal(out, expected)
    assert np.array_equal(out[0, 0], [255, 0, 0]) and np.array_equal(out[-1, 0], [0, 0, 255])


def test_animated_gif_uses_the_first_frame(tmp_path):
    red, blue = Image.new("RGB", (40, 40), (255, 0, 0)), Image.new("RGB", (40, 40), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue], duration=100, loop=0)
    with Image.open(tmp_path / "anim.gif") as im:
        assert im.n_frames == 2
    out = load_image(tmp_path / "anim.gif")
    assert np.all(out == [255, 0, 0])


@pytest.mark.parametrize(
    "name, message",
    [
        ("empty.png", "empty file"),
        ("truncated.png", "truncated"),
        ("truncated.jpg", "truncated"),
        ("text.png", "not an image"),
        ("bomb.png", "decompression bomb"),
        ("large.png", "decompression bomb"),
    ],
)
def test_bad_files_raise_input_errors(images, name, message):
    with pytest.raises(InputError, match=message):
        load_image(images["bad"] / name)


def test_missing_path_and_folder_are_input_errors(images):
    with pytest.raises(InputError, match="no such file"):
        load_image(images["root"] / "missing.png")
    with pytest.raises(InputError, match="not a regular file"):
        load_image(images["good"])


def test_folders_expand_recursively_and_sorted(images):
    got = expand_paths([images["good"]])
    names = [Path(p).name for p, err in got]
    assert names == ["a_rgb32.png", "b_wide.jpg", "c_gray.png", "d_palette.gif"]  # no .txt, no hidden folder
    assert all(err is None for _, err in got)
    (p1, e1), = expand_paths([images["empty_dir"]])
    (p2, e2), = expand_paths([images["no_images"]])
    assert "no images" in e1 and "no images" in e2
    (p3, e3), = expand_paths([images["root"] / "nope"])
    assert e3 == "no such file or folder"


# --------------------------------------------------------------------------------------------
# The command, in-process
# --------------------------------------------------------------------------------------------


def _expected_probs(model, path, temperature):
    from visiondl_keras.evaluation.calibration import apply_temperature

    logits = np.asarray(model.predict_on_batch(load_image(path)[None].astype(np.float32)))
    return apply_temperature(logits, temperature)[0]


def test_json_output_is_calibrated_with_the_sidecar(models, images, capsys):
    path = images["good"] / "b_wide.jpg"
    assert main([str(path), "--model", str(models["keras"]), "--json", "--top-k", "10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 1 and out[0]["path"] == str(path) and out[0]["error"] is None
    preds = out[0]["predictions"]
    assert set(preds[0]) == {"label", "probability"} and len(preds) == 10
    probs = [p["probability"] for p in preds]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-4)
    from visiondl_keras.data.cifar10 import CLASS_NAMES

    expected = _expected_probs(models["model"], path, TEMPERATURE)
    got = np.array([dict((p["label"], p["probability"]) for p in preds)[c] for c in CLASS_NAMES])
    assert np.abs(got - expected).max() < 5e-6  # JSON rounds to 6 decimals; float32 kernels may differ in the last bits
    # --no-calibration: T = 1
    assert main([str(path), "--model", str(models["keras"]), "--json", "--top-k", "10", "--no-calibration"]) == 0
    raw = json.loads(capsys.readouterr().out)[0]["predictions"]
    got_raw = np.array([dict((p["label"], p["probability"]) for p in raw)[c] for c in CLASS_NAMES])
    assert np.abs(got_raw - _expected_probs(models["model"], path, 1.0)).max() < 5e-6
    assert got_raw.max() > got.max()  # T = 2 softens


def test_text_output_and_top_k(models, images, capsys):
    assert main([str(images["good"]), "--model", str(models["keras"]), "--top-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4
    for line in lines:
        path, preds = line.split(": ", 1)
        assert Path(path).exists() and len(preds.split(", ")) == 2
    assert main([str(images["good"] / "a_rgb32.png"), "--model", str(models["keras"]), "--top-k", "50", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)[0]["predictions"]) == 10  # clamped to the classes


def test_bad_inputs_give_one_line_each_and_exit_1(models, images, capsys):
    bad = images["bad"]
    args = [str(images["good"] / "a_rgb32.png"), str(bad / "empty.png"), str(bad / "truncated.png"),
            str(bad / "text.png"), str(bad / "bomb.png"), str(images["root"] / "missing.png"),
            str(images["empty_dir"]), str(images["no_images"]), str(images["good"] / "c_gray.png")]
    assert main(args + ["--model", str(models["keras"]), "--json"]) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert [r["path"] for r in out] == args
    assert [r["error"] is None for r in out] == [True] + [False] * 7 + [True]
    assert all(r["predictions"] for r in out if r["error"] is None)
    err_lines = captured.err.strip().splitlines()
    assert len(err_lines) == 7 and "Traceback" not in captured.err
    for line, path in zip(err_lines, args[1:8]):
        assert line.startswith(f"error: {path}: ")


def test_folder_with_a_bad_image_still_classifies_the_rest(models, images, capsys, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    Image.fromarray(_rgb(50, 50, 8)).save(folder / "ok.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    assert main([str(folder), "--model", str(models["keras"])]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(str(folder / "ok.png") + ": ")
    err = captured.err.strip()
    assert err.startswith(f"error: {folder / 'broken.jpg'}: ") and "\n" not in err and "corrupt" in err


@pytest.mark.parametrize(
    "argv",
    [[], ["x.png", "--top-k", "0"], ["x.png", "--top-k", "three"], ["x.png", "--bogus"]],
)
def test_usage_errors_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_model_errors_exit_2(models, images, tmp_path, capsys, monkeypatch):
    img = str(images["good"] / "a_rgb32.png")
    (tmp_path / "model.txt").write_text("x")
    (tmp_path / "broken.keras").write_bytes(b"not a zip")
    (tmp_path / "broken.tflite").write_bytes(b"not a flatbuffer")
    cases = [(tmp_path / "missing.keras", "model not found"), (tmp_path / "model.txt", "unknown model format"),
             (tmp_path / "broken.keras", "not a readable Keras checkpoint"),
             (tmp_path / "broken.tflite", "not a readable TFLite model"), (tmp_path, "no best.keras")]
    for model, message in cases:
        assert main([img, "--model", str(model)]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1 and err.startswith("error: "), err
    monkeypatch.delenv("VISIONDL_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(infer, "SOURCE_ROOT", tmp_path / "no_checkout")
    monkeypatch.setattr(infer, "PACKAGED_MODEL_DIR", tmp_path / "no_package_data")
    assert main([img]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no default model") and "no_package_data" in err and err.count("\n") == 1


def test_library_raises_package_errors(models, images, tmp_path):
    with pytest.raises(ModelError, match="model not found"):
        infer.load_predictor(tmp_path / "missing.keras")
    with pytest.raises(ModelError, match="unknown model format"):
        (tmp_path / "model.txt").write_text("x")
        infer.load_predictor(tmp_path / "model.txt")
    predictor = infer.load_predictor(models["tflite"])
    with pytest.raises(ConfigError, match="top_k"):
        infer.classify([images["good"]], predictor, top_k=0)
    results = infer.classify([images["good"] / "a_rgb32.png"], predictor)
    with pytest.raises(ConfigError, match="Grad-CAM needs a .keras checkpoint"):
        infer.write_gradcam_overlays(results, predictor, tmp_path / "cams")


def test_default_model_lookup_order(models, tmp_path, monkeypatch):
    """$VISIONDL_MODEL, then ./artifacts/checkpoints, then the source checkout, then the package data."""
    name = infer.DEFAULT_MODEL_NAME
    cwd, checkout, packaged = tmp_path / "cwd", tmp_path / "checkout", tmp_path / "packaged"
    for folder in (cwd / "artifacts" / "checkpoints", checkout / "artifacts" / "checkpoints", packaged):
        folder.mkdir(parents=True)
    (checkout / "pyproject.toml").write_text("")
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(infer, "SOURCE_ROOT", checkout)
    monkeypatch.setattr(infer, "PACKAGED_MODEL_DIR", packaged)
    monkeypatch.delenv("VISIONDL_MODEL", raising=False)
    expected = [cwd / "artifacts" / "checkpoints" / name, checkout / "artifacts" / "checkpoints" / name, packaged / name]
    assert infer.default_model_candidates(need_gradients=True) == expected
    tflite = infer.DEFAULT_TFLITE_NAME
    assert infer.default_model_candidates() == [
        cwd / "artifacts" / "checkpoints" / tflite, expected[0], checkout / "artifacts" / "checkpoints" / tflite,
        expected[1], packaged / tflite, expected[2]]
    (checkout / "artifacts" / "checkpoints" / tflite).write_bytes(models["tflite"].read_bytes())
    assert infer.find_default_model() == checkout / "artifacts" / "checkpoints" / tflite
    with pytest.raises(ModelError, match="no default model"):  # Grad-CAM needs a .keras file; none exists yet
        infer.find_default_model(need_gradients=True)
    (checkout / "artifacts" / "checkpoints" / tflite).unlink()
    for path in reversed(expected):  # each one wins over the ones after it
        path.write_bytes(models["keras"].read_bytes())
        assert infer.find_default_model() == path
    monkeypatch.setenv("VISIONDL_MODEL", str(models["tflite"]))
    assert infer.find_default_model() == models["tflite"]
    assert infer.load_predictor().kind == "tflite"
    monkeypatch.setenv("VISIONDL_MODEL", str(tmp_path / "gone.keras"))
    with pytest.raises(ModelError, match="VISIONDL_MODEL"):
        infer.find_default_model()


def test_packaged_model_uses_its_sidecar(models, tmp_path, monkeypatch):
    from visiondl_keras.evaluation.calibration import save_temperature

    packaged = tmp_path / "packaged"
    packaged.mkdir()
    model = packaged / infer.DEFAULT_MODEL_NAME
    model.write_bytes(models["keras"].read_bytes())
    save_temperature(model, 3.0)
    monkeypatch.delenv("VISIONDL_MODEL", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(infer, "SOURCE_ROOT", tmp_path / "no_checkout")
    monkeypatch.setattr(infer, "PACKAGED_MODEL_DIR", packaged)
    predictor = infer.load_predictor()
    assert predictor.source == str(model) and predictor.temperature == 3.0


def test_infer_is_also_a_subcommand(models, images, capsys):
    from visiondl_keras.cli.main import main as cli_main

    img = str(images["good"] / "a_rgb32.png")
    assert cli_main(["infer", img, "--model", str(models["tflite"]), "--top-k", "1"]) == 0
    assert capsys.readouterr().out.startswith(img + ": ")
    assert cli_main(["infer", img, "--model", str(images["root"] / "missing.keras")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


def test_deterministic_alone_or_in_company(models, images, capsys):
    target = str(images["good"] / "b_wide.jpg")
    runs = []
    for argv in ([target], [target], [str(images["good"]), target]):
        assert main(argv + ["--model", str(models["keras"]), "--json", "--top-k", "10"]) == 0
        out = json.loads(capsys.readouterr().out)
        runs.append(next(r for r in out if r["path"] == target)["predictions"])
    assert runs[0] == runs[1] == runs[2]


def test_tflite_model_matches_keras(models, images, capsys):
    paths = [str(p) for p, _ in expand_paths([images["good"]])]
    results = {}
    for kind in ("keras", "tflite"):
        assert main(paths + ["--model", str(models[kind]), "--json", "--top-k", "10"]) == 0
        results[kind] = json.loads(capsys.readouterr().out)
    for a, b in zip(results["keras"], results["tflite"]):
        pa = {p["label"]: p["probability"] for p in a["predictions"]}
        pb = {p["label"]: p["probability"] for p in b["predictions"]}
        assert max(abs(pa[k] - pb[k]) for k in pa) < 1e-5
    # --no-calibration undoes the folded-in temperature with the export's metadata
    assert main(paths[:1] + ["--model", str(models["tflite"]), "--json", "--top-k", "10", "--no-calibration"]) == 0
    raw = {p["label"]: p["probability"] for p in json.loads(capsys.readouterr().out)[0]["predictions"]}
    from visiondl_keras.data.cifar10 import CLASS_NAMES

    expected = _expected_probs(models["model"], paths[0], 1.0)
    assert max(abs(raw[c] - e) for c, e in zip(CLASS_NAMES, expected)) < 1e-5


def test_tflite_falls_back_to_tf_lite_without_litert(models, images, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError("no LiteRT here")
        return real_import(name, *args, **kwargs)

    x = load_image(images["good"] / "a_rgb32.png")[None]
    with_litert = infer.load_predictor(models["tflite"]).predict(x)
    monkeypatch.setattr(builtins, "__import__", no_litert)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        fallback = infer.load_predictor(models["tflite"]).predict(x)
    assert np.abs(with_litert - fallback).max() < 1e-6


def test_gradcam_overlays(models, images, tmp_path, capsys):
    pytest.importorskip("visiondl_keras.evaluation.gradcam")
    out_dir = tmp_path / "cams"
    paths = [str(images["good"] / "a_rgb32.png"), str(images["good"] / "b_wide.jpg"), str(images["bad"] / "empty.png")]
    assert main(paths + ["--model", str(models["keras"]), "--gradcam", str(out_dir)]) == 1
    files = sorted(p.name for p in out_dir.iterdir())
    assert files == ["a_rgb32_gradcam.png", "b_wide_gradcam.png"]
    with Image.open(out_dir / "a_rgb32_gradcam.png") as im:
        assert im.size == (256, 256)
    capsys.readouterr()
    assert main(paths[:1] + ["--model", str(models["tflite"]), "--gradcam", str(out_dir)]) == 2
    assert "--gradcam needs a .keras checkpoint" in capsys.readouterr().err


def test_gradcam_failure_is_one_line(images, tmp_path, capsys):
    pytest.importorskip("visiondl_keras.evaluation.gradcam")
    import keras

    inputs = keras.Input((32, 32, 3))
    dense = keras.Model(inputs, keras.layers.Dense(10, name="logits")(keras.layers.Flatten()(inputs)))
    dense.save(tmp_path / "dense.keras")
    img = str(images["good"] / "a_rgb32.png")
    assert main([img, "--model", str(tmp_path / "dense.keras"), "--gradcam", str(tmp_path / "cams")]) == 1
    captured = capsys.readouterr()
    assert captured.out.startswith(img + ": ")
    assert captured.err.startswith("error: --gradcam: ") and captured.err.count("\n") == 1


# --------------------------------------------------------------------------------------------
# The command, as users run it
# --------------------------------------------------------------------------------------------


def _run(args, **kw):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=ROOT, env=env, timeout=300, **kw)


def test_cli_subprocess_exit_codes_and_stderr(models, images):
    good, bad = str(images["good"] / "a_rgb32.png"), str(images["bad"] / "truncated.png")
    r = _run(["-m", "visiondl_keras.infer", good, "--model", str(models["tflite"])])
    assert r.returncode == 0 and r.stdout.startswith(good + ": ") and r.stderr == ""
    r = _run(["-m", "visiondl_keras.infer", good, bad, "--model", str(models["tflite"]), "--json"])
    assert r.returncode == 1 and len(json.loads(r.stdout)) == 2
    assert r.stderr.strip().splitlines() == [f"error: {bad}: " + r.stderr.split(": ", 2)[2].strip()]
    assert "Traceback" not in r.stderr
    r = _run(["-m", "visiondl_keras.infer"])
    assert r.returncode == 2 and "usage:" in r.stderr and "Traceback" not in r.stderr


def test_cli_subprocess_keras_model_bad_input(models, images):
    r = _run(["-m", "visiondl_keras.infer", str(images["bad"] / "bomb.png"), str(images["good"] / "c_gray.png"),
              "--model", str(models["keras"])])
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith(f"error: {images['bad'] / 'bomb.png'}: ")
    assert r.stdout.startswith(str(images["good"] / "c_gray.png") + ": ")


def test_tflite_path_does_not_import_keras(models, images):
    pytest.importorskip("ai_edge_litert")
    code = (
        "import sys; from visiondl_keras import infer; "
        f"rc = infer.main([{str(images['good'] / 'a_rgb32.png')!r}, '--model', {str(models['tflite'])!r}]); "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules, rc)"
    )
    r = _run(["-c", code])
    assert r.stdout.strip().splitlines()[-1] == "False False 0", r.stdout + r.stderr


# --------------------------------------------------------------------------------------------
# samples/ and the shipped model
# --------------------------------------------------------------------------------------------


def test_samples_command_writes_the_first_test_image_of_each_class(image_tree, tmp_path, capsys):
    from visiondl_keras.cli.main import main as cli

    root, expected = image_tree
    out = tmp_path / "samples"
    assert cli(["samples", "--data", str(root), "--out", str(out), "--quiet"]) == 0
    assert "wrote 10 images" in capsys.readouterr().out
    for k, name in enumerate(expected.class_names):
        path = out / f"{name}.png"
        assert Image.open(path).size == (128, 128)
        first = int(np.argmax(expected.y_test == k))
        assert np.array_equal(load_image(path), expected.x_test[first])  # the infer resize undoes the enlargement
    with pytest.raises(SystemExit) as exc:
        cli(["samples", "--data", str(root), "--out", str(out), "--scale", "0"])
    assert exc.value.code == 2


def test_samples_are_documented_and_not_committed():
    readme = (ROOT / "samples" / "README.md").read_text()
    assert "python -m visiondl_keras samples" in readme and "test split" in readme
    assert "samples/*.png" in (ROOT / ".gitignore").read_text().splitlines()


@pytest.fixture(scope="module")
def samples_dir(tmp_path_factory):
    from visiondl_keras.data.samples import write_samples

    try:
        return write_samples(tmp_path_factory.mktemp("samples"), progress=False)[0].parent
    except Exception as exc:  # noqa: BLE001 - no data on this machine
        pytest.skip(f"CIFAR-10 not available: {exc}")


@pytest.mark.integration
def test_default_model_runs_on_the_samples(samples_dir, capsys):
    try:
        infer.find_default_model()
    except ModelError:
        pytest.skip("the reference checkpoint is not shipped yet")
    assert main([str(samples_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out) == 10
    correct = sum(Path(r["path"]).name.startswith(r["predictions"][0]["label"]) for r in out)
    assert correct >= 6  # the reference model gets most of these ten test images right


def test_default_model_is_the_shipped_tflite_and_imports_no_keras(images):
    """`python -m visiondl_keras.infer img.png` in the checkout uses the calibrated .tflite (fast start)."""
    pytest.importorskip("ai_edge_litert")
    shipped = ROOT / "artifacts" / "checkpoints" / infer.DEFAULT_TFLITE_NAME
    if not shipped.is_file():
        pytest.skip("no shipped .tflite model")
    code = (
        "import os, sys; os.environ.pop('VISIONDL_MODEL', None); "
        "import visiondl_keras.deploy.predictor as p; print(p.find_default_model()); "
        "from visiondl_keras.cli.infer import main; "
        f"rc = main([{str(images['good'] / 'a_rgb32.png')!r}]); "
        "print('keras' in sys.modules, 'tensorflow' in sys.modules, rc)"
    )
    r = _run(["-c", code])
    lines = r.stdout.strip().splitlines()
    assert lines[0] == str(shipped) and lines[-1] == "False False 0", r.stdout + r.stderr
