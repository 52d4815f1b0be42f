"""HTML and images for the dashboard's page (no Gradio import here, so it is testable alone)."""

from __future__ import annotations

import html
import io

import numpy as np
from PIL import Image

BAR_COLOUR = "#3b82f6"
CAUTION_COLOUR = "#b45309"


def figure_to_image(fig) -> Image.Image:
    """A matplotlib figure as a PIL image; the figure is closed (the page keeps no figure objects)."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    finally:
        plt.close(fig)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def answers_table(answers: list[dict]) -> str:
    """The models' answers side by side: one column per model, its top-k with bars, its temperature,
    whether TTA was used, and the out-of-distribution caution."""
    if not answers:
        return "<p>No model to compare.</p>"
    cells = []
    for a in answers:
        rows = "".join(
            f"<div style='margin:2px 0'><span style='display:inline-block;width:7.5em'>{html.escape(p['label'])}"
            f"</span><span style='display:inline-block;width:{max(1, round(120 * p['probability']))}px;height:0.8em;"
            f"background:{BAR_COLOUR}'></span> {100 * p['probability']:.1f}%</div>"
            for p in a["predictions"]
        )
        temp = (f"temperature {a['temperature']:g}" if a["calibrated"]
                else "temperature 1 (no calibration stored)")
        extra = f"{html.escape(a['kind'])}, {temp}, TTA {'on' if a['tta'] else 'off'}"
        if a.get("tta_note"):
            extra += f" ({html.escape(a['tta_note'])})"
        if a["ood"]:
            extra += (f"<div style='color:{CAUTION_COLOUR};margin-top:4px'><b>Caution:</b> unlike CIFAR-10 images "
                      f"(top probability {a['ood_score']:.2f} &lt; {a['ood_threshold']:.2f}); the answer is one of "
                      "the ten classes regardless.</div>")
        elif a["ood"] is False:
            extra += "<div style='margin-top:4px'>In-distribution check passed.</div>"
        cells.append(f"<td style='vertical-align:top;padding:6px 14px'><b>{html.escape(a['model'])}</b>{rows}"
                     f"<div style='font-size:0.85em;opacity:0.8;margin-top:4px'>{extra}</div></td>")
    return f"<table class='visiondl-answers'><tr>{''.join(cells)}</tr></table>"


def metrics_table(reports: dict[str, dict]) -> str:
    """A Markdown table of accuracy, NLL, ECE, MCE and Brier score per named temperature report."""
    lines = ["| | temperature | accuracy | NLL | ECE | MCE | Brier |", "|---|---|---|---|---|---|---|"]
    for name, r in reports.items():
        lines.append(f"| {name} | {r['temperature']:.3f} | {100 * r['accuracy']:.2f}% | {r['nll']:.4f} | "
                     f"{100 * r['ece']:.2f}% | {100 * r['mce']:.2f}% | {r['brier']:.4f} |")
    return "\n".join(lines)


def before_after_table(before: list[dict], after: list[dict]) -> str:
    """Two top-k lists (clean and perturbed) as a Markdown table."""
    lines = ["| rank | original | perturbed |", "|---|---|---|"]
    for i in range(max(len(before), len(after))):
        b = f"{before[i]['label']} {100 * before[i]['probability']:.1f}%" if i < len(before) else ""
        a = f"{after[i]['label']} {100 * after[i]['probability']:.1f}%" if i < len(after) else ""
        lines.append(f"| {i + 1} | {b} | {a} |")
    return "\n".join(lines)


def as_uint8(image) -> np.ndarray:
    """An image as a uint8 array (for Gradio's image components)."""
    return np.asarray(image, dtype=np.uint8)


def side_by_side(images, gap: int = 8) -> np.ndarray | None:
    """Equal-height uint8 images in one row, separated by white gaps (None for no image)."""
    images = [as_uint8(im) for im in images]
    if not images:
        return None
    h = max(im.shape[0] for im in images)
    white = np.full((h, gap, 3), 255, np.uint8)
    parts = []
    for im in images:
        pad = np.full((h - im.shape[0], im.shape[1], 3), 255, np.uint8)
        parts += [np.concatenate([im, pad]), white]
    return np.concatenate(parts[:-1], axis=1)
