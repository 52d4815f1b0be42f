"""The dashboard's page (Gradio Blocks, five tabs) and its server.

``python -m visiondl_keras dashboard`` calls :func:`serve`. The page is built for a classroom
without internet: the server binds to 127.0.0.1 unless told otherwise, Gradio's telemetry and
update check are off, and the theme uses the system's fonts (Gradio's default theme would fetch
web fonts from Google). Models and test data load on first use (:mod:`.resources`), so the page
answers within seconds of starting.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path

from visiondl_keras.dashboard.handlers import ANY_CLASS, Handlers
from visiondl_keras.dashboard.resources import Resources
from visiondl_keras.data.cifar10 import CLASS_NAMES
from visiondl_keras.errors import VisionDLError
from visiondl_keras.names import CORRUPTIONS

TITLE = "visiondl-keras dashboard"
SYSTEM_FONTS = ["ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace"]
MAX_FILE_SIZE = "25mb"
RUN_COLOURS = ("#1f77b4", "#ff7f0e")


def _offline_environment() -> None:
    """No telemetry and no update check (both would call api.gradio.app); set before importing Gradio."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def offline_theme():
    """Gradio's default theme with system fonts instead of Google Fonts (nothing is fetched)."""
    import gradio as gr

    return gr.themes.Default(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def _shown_under(fn, lock):
    """Run an event under ``lock`` (see :class:`Resources`) and show a user error
    (:class:`VisionDLError`) as a message in the page instead of failing the event."""
    import gradio as gr

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            with lock:
                return fn(*args, **kwargs)
        except VisionDLError as exc:
            raise gr.Error(str(exc), print_exception=False) from None

    return wrapper


# long: one straight description of the page, tab by tab, with each control wired where it is declared
def build_app(handlers: Handlers):
    """The Gradio ``Blocks`` of the dashboard (not launched)."""
    import gradio as gr
    import pandas as pd

    res = handlers.res
    shown = functools.partial(_shown_under, lock=res.lock)
    names = res.names
    keras_names = res.gradient_models()
    with gr.Blocks(title=TITLE, analytics_enabled=False) as app:
        gr.Markdown(f"## {TITLE}\nCIFAR-10 models of this course, side by side. Models: "
                    + (", ".join(f"`{n}`" for n in names) or "none found (pass --model PATH)") + ".")
        current = gr.State(None)
        with gr.Tab("Predict", id="predict"):
            with gr.Row():
                with gr.Column(scale=1):
                    upload = gr.File(label="Upload or drop an image", type="filepath", file_count="single")
                    gr.Markdown("…or take an image from the CIFAR-10 test split:")
                    class_pick = gr.Dropdown([ANY_CLASS, *CLASS_NAMES], value=ANY_CLASS, label="class")
                    with gr.Row():
                        random_btn = gr.Button("Random test image")
                        wrong_btn = gr.Button("Random misclassified")
                    wrong_model = gr.Dropdown(names, value=names[0] if names else None,
                                              label="misclassified by (on the test subset)")
                    tta = gr.Checkbox(False, label="test-time augmentation (flips and shifts, .keras models)")
                    show_cam = gr.Checkbox(True, label="Grad-CAM (.keras models)")
                    k = gr.Slider(1, 10, value=3, step=1, label="top-k")
                with gr.Column(scale=2):
                    message = gr.Markdown("Upload an image or pick a test image.", elem_id="predict-message")
                    with gr.Row():
                        preview = gr.Image(label="model input (32x32, enlarged)", type="numpy", interactive=False,
                                           height=256)
                        cams = gr.Image(label="Grad-CAM, predicted class (.keras models)",
                                        type="numpy", interactive=False, height=256)
                    answers = gr.HTML(elem_id="predict-answers")
                    with gr.Accordion("as JSON", open=False):
                        record = gr.JSON(label="answers")
            outs = [current, message, preview, answers, cams, record]
            upload.upload(shown(handlers.upload), [upload, tta, show_cam, k], outs, api_name="predict_upload")
            random_btn.click(shown(lambda c, *a: handlers.test_image(c, None, *a)), [class_pick, tta, show_cam, k],
                             outs, api_name="predict_test_image")
            wrong_btn.click(shown(handlers.test_image), [class_pick, wrong_model, tta, show_cam, k], outs,
                            api_name="predict_misclassified")
            for control in (tta, show_cam, k):
                control.change(shown(handlers.answer), [current, tta, show_cam, k], outs[2:], api_name=False)

        with gr.Tab("Errors", id="errors"):
            gr.Markdown("The confusion matrix of a model on a stratified subset of the test split.")
            with gr.Row():
                err_model = gr.Dropdown(names, value=names[0] if names else None, label="model")
                err_btn = gr.Button("Compute the confusion matrix")
            err_note = gr.Markdown()
            with gr.Row():
                err_plot = gr.Image(label="confusion matrix", type="pil", interactive=False)
                with gr.Column():
                    err_table = gr.Dataframe(label="counts (select a cell)", interactive=False)
                    with gr.Row():
                        cell_true = gr.Dropdown(list(CLASS_NAMES), value="cat", label="true class")
                        cell_pred = gr.Dropdown(list(CLASS_NAMES), value="dog", label="predicted class")
                    cell_note = gr.Markdown()
            cell_gallery = gr.Gallery(label="images of the cell, most confident first", columns=8, height=320,
                                      object_fit="contain")
            err_btn.click(shown(handlers.confusion), [err_model], [err_plot, err_note, err_table],
                          api_name="confusion")

            def select_cell(evt: gr.SelectData):
                row, col = evt.index
                if col == 0:
                    return gr.update(), gr.update()
                return CLASS_NAMES[row], CLASS_NAMES[col - 1]

            select_cell.__annotations__ = {"evt": gr.SelectData}  # a real class: this module postpones annotations

            err_table.select(select_cell, None, [cell_true, cell_pred], api_name=False)
            for control in (cell_true, cell_pred):
                control.change(shown(handlers.cell), [err_model, cell_true, cell_pred], [cell_gallery, cell_note],
                               api_name=False)

        with gr.Tab("Calibration", id="calibration"):
            gr.Markdown("Reliability diagrams before (T = 1) and after temperature scaling; move the slider to "
                        "see the ECE and NLL change. Temperature scaling never changes the predicted class.")
            with gr.Row():
                cal_model = gr.Dropdown(names, value=names[0] if names else None, label="model")
                cal_btn = gr.Button("Compute")
                temperature = gr.Slider(0.1, 3.0, value=1.0, step=0.01, label="temperature T")
            cal_table = gr.Markdown()
            with gr.Row():
                cal_before = gr.Image(label="before (T = 1)", type="pil", interactive=False)
                cal_after = gr.Image(label="at the slider's T", type="pil", interactive=False)

            def compute_calibration(model):
                ref_t, _ = handlers.calibration_reference(model)
                return (*handlers.calibration(model, round(ref_t, 2)), round(ref_t, 2))

            cal_btn.click(shown(compute_calibration), [cal_model], [cal_before, cal_after, cal_table, temperature],
                          api_name="calibration")
            temperature.input(shown(handlers.calibration_at), [cal_model, temperature], [cal_after, cal_table],
                              api_name="calibration_at", trigger_mode="always_last")

        with gr.Tab("Robustness", id="robustness") as robust_tab:
            gr.Markdown("Perturb the image of the Predict tab and watch the prediction change.")
            with gr.Row():
                with gr.Column(scale=1):
                    kind = gr.Radio(["corruption", "gaussian noise", "FGSM"], value="corruption", label="perturbation")
                    corruption = gr.Dropdown(list(CORRUPTIONS), value=CORRUPTIONS[0], label="corruption")
                    severity = gr.Slider(1, 5, value=3, step=1, label="severity")
                    sigma = gr.Slider(0, 64, value=8, step=1, label="noise sigma (0-255 pixel units)")
                    epsilon = gr.Slider(0, 16, value=4, step=0.5, label="FGSM epsilon (0-255 pixel units)")
                    rob_model = gr.Dropdown(names, value=(keras_names or names or [None])[0], label="model")
                    rob_btn = gr.Button("Apply")
                with gr.Column(scale=2):
                    with gr.Row():
                        rob_before = gr.Image(label="original", type="numpy", interactive=False, height=256)
                        rob_after = gr.Image(label="perturbed", type="numpy", interactive=False, height=256)
                    rob_table = gr.Markdown()
            rob_note = gr.Markdown()
            with gr.Row():
                rob_curves = gr.Image(label="accuracy under noise and attacks", type="pil", interactive=False)
                rob_heat = gr.Image(label="accuracy per corruption and severity", type="pil", interactive=False)
            rob_inputs = [current, kind, corruption, severity, sigma, epsilon, rob_model]
            rob_btn.click(shown(handlers.perturb), rob_inputs, [rob_before, rob_after, rob_table], api_name="perturb")
            robust_tab.select(shown(handlers.robustness_curves), None, [rob_curves, rob_heat, rob_note],
                              api_name=False)

        with gr.Tab("Runs", id="runs") as runs_tab:
            gr.Markdown("Training curves of the runs under `runs/` and `artifacts/runs/` (their history.csv).")
            run_names = list(handlers.runs())
            with gr.Row():
                run_a = gr.Dropdown(run_names, value=run_names[0] if run_names else None, label="run A")
                run_b = gr.Dropdown(run_names, value=run_names[1] if len(run_names) > 1 else None, label="run B")
                metric = gr.Dropdown(["val_accuracy", "accuracy", "loss", "val_loss"], value="val_accuracy",
                                     label="metric", allow_custom_value=True)
            curves = gr.LinePlot(x="epoch", y="value", color="run", label="training curves", y_title="val_accuracy")
            curves_note = gr.Markdown()

            def plot_runs(a, b, m):
                frame = pd.DataFrame(handlers.run_curves(a, b, m))
                runs = list(dict.fromkeys(frame["run"]))
                colours = dict(zip(runs, RUN_COLOURS))
                note = " vs ".join(f"<span style='color:{colours[r]}'>&#9632;</span> `{r}`" for r in runs)
                return gr.LinePlot(value=frame, y_title=m, color_map=colours), f"{m}: {note}"

            def refresh_runs(a, b):
                names_now = list(handlers.runs())
                metrics = handlers.run_metrics(a, b) or ["val_accuracy"]
                return gr.update(choices=names_now), gr.update(choices=names_now), gr.update(choices=metrics)

            for control in (run_a, run_b, metric):
                control.change(shown(plot_runs), [run_a, run_b, metric], [curves, curves_note], api_name=False)
            runs_tab.select(refresh_runs, [run_a, run_b], [run_a, run_b, metric], api_name=False).then(
                shown(plot_runs), [run_a, run_b, metric], [curves, curves_note], api_name=False)
    return app


def serve(models=None, host: str = "127.0.0.1", port: int = 7860, data: str | None = None,
          subset: int = 1000, root: str | os.PathLike = ".", quiet: bool = False, preload: bool = True) -> None:
    """Start the dashboard and serve it until interrupted.

    Args:
        models: model files (default: :func:`~visiondl_keras.dashboard.resources.discover_models`).
        host: the interface to bind (default 127.0.0.1: this computer only).
        port: the TCP port.
        data: the CIFAR-10 source (default ``$VISIONDL_DATA`` and the usual places).
        subset: test images for the statistics (stratified; 0 = all 10,000).
        root: the folder whose ``artifacts/`` and ``runs/`` are read.
        quiet: print nothing but errors.
        preload: once the page is up, load the models in a background thread (the first answer is
            then quicker); False loads each on first use only.

    Raises:
        ModelError: a model file does not exist.
    """
    _offline_environment()
    # Gradio switches matplotlib's backend around every event (in its event loop's thread); pyplot must be
    # fully imported before that can happen, or an event racing a first import in a worker thread fails.
    import matplotlib.pyplot  # noqa: F401

    from visiondl_keras.dashboard.resources import discover_models

    paths = [Path(m) for m in models] if models else discover_models(root)
    handlers = Handlers(Resources(paths, data=data, subset=subset), root=root)
    app = build_app(handlers)
    app.queue(default_concurrency_limit=1)
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, quiet=quiet,
               theme=offline_theme(), max_file_size=MAX_FILE_SIZE, ssr_mode=False, show_error=True,
               mcp_server=False, pwa=False, prevent_thread_lock=True)
    if preload:
        threading.Thread(target=handlers.res.preload, name="dashboard-preload", daemon=True).start()
    app.block_thread()
