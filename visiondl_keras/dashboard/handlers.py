"""What each control of the dashboard does: methods that take the widgets' values and return the
values of the widgets they update (plain Python and numpy; :mod:`.app` wires them to Gradio).

User errors (:class:`~visiondl_keras.errors.VisionDLError`: a bad upload, missing data, a model
that cannot be loaded) are returned as messages or raised for :mod:`.app` to show in the page.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visiondl_keras.dashboard import analysis, views
from visiondl_keras.dashboard.resources import Resources
from visiondl_keras.data.cifar10 import CLASS_NAMES
from visiondl_keras.deploy.predictor import InputError
from visiondl_keras.errors import ConfigError, VisionDLError

ANY_CLASS = "any class"
DIAGNOSTICS_FILE = Path("artifacts") / "metrics" / "diagnostics_scratch_airbench94.json"
RUN_FOLDERS = (Path("artifacts") / "runs", "runs")  # the published references first


def _cls(name: str) -> int:
    if name not in CLASS_NAMES:
        raise ConfigError(f"unknown class {name!r}; choose one of {', '.join(CLASS_NAMES)}.")
    return CLASS_NAMES.index(name)


class Handlers:
    """The dashboard's behaviour over one :class:`Resources` (shared by every browser session).

    Args:
        resources: the models and data.
        root: the folder whose ``runs/``, ``artifacts/runs/`` and ``artifacts/metrics/`` are read.
    """

    def __init__(self, resources: Resources, root: str | Path = "."):
        self.res = resources
        self.root = Path(root)
        self.rng = np.random.default_rng()

    # ---- Predict -------------------------------------------------------------------------------

    def answer(self, current: dict | None, tta: bool, show_gradcam: bool, k: int):
        """``(preview, answers_html, gradcam_image, answers_json)`` for the current image; the Grad-CAM
        overlays of the ``.keras`` models stand side by side in the table's order."""
        if not current:
            return None, "", None, {}
        image = np.asarray(current["image"], np.uint8)
        answers, cams = [], []
        for name in self.res.names:
            try:
                predictor = self.res.predictor(name)
                a = analysis.model_answer(name, predictor, image, int(k), bool(tta))
                if tta and not a["tta"]:
                    a["tta_note"] = "an export: no Keras model to run the views through"
                answers.append(a)
                if show_gradcam and predictor.keras_model is not None:
                    cams.append(analysis.gradcam_overlay(predictor, image))
            except VisionDLError as exc:
                answers.append({"model": name, "kind": "error", "temperature": 1.0, "calibrated": False, "tta": False,
                                "predictions": [], "ood": None, "tta_note": str(exc)})
        record = {"source": current.get("title"), "true_label": current.get("label"), "answers": answers}
        return analysis.enlarge(image), views.answers_table(answers), views.side_by_side(cams), record

    def upload(self, path, tta: bool, show_gradcam: bool, k: int):
        """``(current, message, preview, answers_html, gradcam_image, json)`` for an uploaded file."""
        try:
            image, notes = analysis.validate_upload(path)
        except InputError as exc:
            message = f"**This file cannot be classified:** {exc}."
            return None, message, None, "", None, {"error": str(exc)}
        current = {"image": image, "label": None, "title": f"uploaded file {Path(path).name}"}
        message = f"Classifying the uploaded file {Path(path).name}" + "".join(f"; {n}" for n in notes) + "."
        return (current, message, *self.answer(current, tta, show_gradcam, k))

    def test_image(self, class_name: str, misclassified_by: str | None, tta: bool, show_gradcam: bool, k: int):
        """A random test image (of a class, or misclassified by a model): same outputs as :meth:`upload`."""
        test = self.res.test_images()
        pool = test.subset if misclassified_by else np.arange(len(test.y))
        if misclassified_by:
            logits, labels = self.res.subset_logits(misclassified_by)
            pool = pool[logits.argmax(axis=1) != labels]
        if class_name != ANY_CLASS:
            pool = pool[test.y[pool] == _cls(class_name)]
        if len(pool) == 0:
            raise ConfigError("no such test image in the subset; choose another class or model.")
        i = int(self.rng.choice(pool))
        label = int(test.y[i])
        current = {"image": test.x[i], "label": label, "title": f"test image #{i}"}
        why = f", misclassified by {misclassified_by} (among {test.subset_note()})" if misclassified_by else ""
        message = f"Test image #{i}, true class **{CLASS_NAMES[label]}**{why}."
        return (current, message, *self.answer(current, tta, show_gradcam, k))

    # ---- Errors --------------------------------------------------------------------------------

    def confusion(self, model: str):
        """``(figure, note, counts_table)`` of a model's confusion matrix on the test subset."""
        from visiondl_keras.reporting.plots import confusion_matrix_figure

        logits, labels = self.res.subset_logits(model)
        names = self.res.predictor(model).class_names
        cm = analysis.confusion(logits, labels, len(names))
        fig = confusion_matrix_figure(cm["normalized"], names, counts=cm["counts"], title=f"{model}")
        note = (f"{model}: accuracy {100 * cm['accuracy']:.2f}% on {self.res.test_images().subset_note()}. "
                "Pick a cell (a row = the true class, a column = the predicted class) to see its images.")
        table = [[names[i], *map(int, row)] for i, row in enumerate(np.asarray(cm["counts"]))]
        return views.figure_to_image(fig), note, {"headers": ["true \\ predicted", *names], "data": table}

    def cell(self, model: str, true_name: str, predicted_name: str):
        """``(gallery, note)``: the test-subset images of one confusion-matrix cell, most confident first."""
        logits, labels = self.res.subset_logits(model)
        predictor = self.res.predictor(model)
        from visiondl_keras.evaluation.calibration import apply_temperature

        probs = apply_temperature(logits, predictor.temperature)
        t, p = _cls(true_name), _cls(predicted_name)
        where = analysis.cell_examples(probs, labels, t, p)
        test = self.res.test_images()
        gallery = [(analysis.enlarge(test.x[test.subset[j]], 4),
                    f"#{int(test.subset[j])}: p({predicted_name})={probs[j, p]:.2f}, p({true_name})={probs[j, t]:.2f}")
                   for j in where]
        total = int(np.sum((labels == t) & (probs.argmax(axis=1) == p)))
        kind = "correct" if t == p else "misclassified"
        note = f"{total} {kind} image(s) of class {true_name} predicted as {predicted_name}; showing {len(where)}."
        return gallery, note

    # ---- Calibration ---------------------------------------------------------------------------

    def calibration_reference(self, model: str) -> tuple[float, str]:
        """The temperature to compare with T = 1: the one stored with the model, else one fitted on the
        test subset (said so in the returned description)."""
        predictor = self.res.predictor(model)
        if predictor.temperature != 1.0:
            return predictor.temperature, "stored with the model (fitted on the validation split)"
        from visiondl_keras.evaluation.calibration import fit_temperature

        logits, labels = self.res.subset_logits(model)
        return fit_temperature(logits, labels), "fitted on these test images (no temperature is stored with it)"

    def calibration(self, model: str, temperature: float):
        """``(before_figure, slider_figure, metrics_markdown)``: reliability at T = 1 and at the slider's T."""
        from visiondl_keras.evaluation.calibration import reliability_diagram

        logits, labels = self.res.subset_logits(model)
        before = analysis.temperature_report(logits, labels, 1.0)
        fig = reliability_diagram(before["probs"], labels, title=f"{model}, T = 1 (before)")
        return (views.figure_to_image(fig), *self.calibration_at(model, temperature))

    def calibration_at(self, model: str, temperature: float):
        """``(figure, metrics_markdown)`` at the slider's temperature, the table comparing it with T = 1
        and the reference temperature (what the slider updates live)."""
        from visiondl_keras.evaluation.calibration import reliability_diagram

        logits, labels = self.res.subset_logits(model)
        ref_t, ref_note = self.calibration_reference(model)
        reports = {"T = 1 (before)": analysis.temperature_report(logits, labels, 1.0),
                   "reference T": analysis.temperature_report(logits, labels, ref_t),
                   "slider T": analysis.temperature_report(logits, labels, float(temperature))}
        fig = reliability_diagram(reports["slider T"]["probs"], labels, title=f"{model}, T = {float(temperature):.2f}")
        note = f"\n\nReference T {ref_note}. Measured on {self.res.test_images().subset_note()}."
        return views.figure_to_image(fig), views.metrics_table(reports) + note

    # ---- Robustness ----------------------------------------------------------------------------

    def perturb(self, current: dict | None, kind: str, corruption: str, severity: int, sigma: float,
                epsilon: float, model: str):
        """``(original, perturbed, table)``: the current image before and after, with the model's answers."""
        if not current:
            raise ConfigError("no image yet: upload one or pick a test image in the Predict tab first.")
        predictor = self.res.predictor(model)
        image = np.asarray(current["image"], np.uint8)
        before = analysis.top_k(analysis.predict_probs(predictor, image[None])[0][0], predictor.class_names, 3)
        label = current.get("label")
        if label is None:  # an upload: attack the predicted label
            label = predictor.class_names.index(before[0]["label"])
        out = analysis.perturb(image, kind, corruption, int(severity), float(sigma), float(epsilon),
                               keras_model=predictor.keras_model, label=label)
        after = analysis.top_k(analysis.predict_probs(predictor, out[None])[0][0], predictor.class_names, 3)
        what = {"corruption": f"{corruption} at severity {int(severity)}",
                "gaussian noise": f"Gaussian noise, sigma {float(sigma):g}/255",
                "FGSM": f"FGSM, epsilon {float(epsilon):g}/255 (against label "
                        f"{predictor.class_names[int(label)]})"}[kind]
        table = f"**{current.get('title')}**, {what}, model {model}:\n\n" + views.before_after_table(before, after)
        return analysis.enlarge(image), analysis.enlarge(out), table

    def robustness_curves(self):
        """``(curves_figure, corruption_heatmap, note)`` from the committed diagnostics file."""
        from visiondl_keras.reporting.plots import corruption_heatmap, robustness_curves

        diag = analysis.read_diagnostics(self.root / DIAGNOSTICS_FILE)
        if diag is None:
            return None, None, (f"No {DIAGNOSTICS_FILE} yet: run `python -m visiondl_keras diagnose` on the "
                                "shipped model to measure these curves.")
        data = (diag.get("data") or {})
        note = (f"Measured by `diagnose` on {data.get('num_images', '?')} test images of "
                f"{data.get('description', 'CIFAR-10')} for {diag.get('model')}.")
        curves = views.figure_to_image(robustness_curves(diag.get("noise"), diag.get("attacks")))
        heat = views.figure_to_image(corruption_heatmap(diag["corruptions"])) if diag.get("corruptions") else None
        return curves, heat, note

    # ---- Runs ----------------------------------------------------------------------------------

    def runs(self) -> dict[str, Path]:
        return analysis.find_runs([self.root / f for f in RUN_FOLDERS], base=self.root)

    def run_metrics(self, run_a: str | None, run_b: str | None) -> list[str]:
        runs = self.runs()
        keys: list[str] = []
        for name in (run_a, run_b):
            if name in runs:
                for row in analysis.read_history(runs[name])[:1]:
                    keys += [k for k in row if k not in keys and k not in ("epoch",)]
        return keys

    def run_curves(self, run_a: str | None, run_b: str | None, metric: str):
        """Long-format columns (``epoch``, ``value``, ``run``) of ``metric`` for the chosen runs."""
        runs = self.runs()
        chosen = [r for r in dict.fromkeys((run_a, run_b)) if r in runs]
        if not chosen:
            raise ConfigError("choose a run (folders with a history.csv under runs/ or artifacts/runs/).")
        cols = analysis.overlaid_curves({r: analysis.read_history(runs[r]) for r in chosen}, metric)
        return {"epoch": cols["epoch"], "value": cols[metric], "run": cols["run"]}
