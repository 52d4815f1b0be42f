"""CONTRIBUTORS: read CONTRIBUTING.md at the repository root first (venv, nice -n 15, commit rules, run-dir format).

Every matplotlib figure of the package, so styling is consistent.

Functions take numpy arrays / dicts and return a ``matplotlib.figure.Figure``; ``save_figure``
writes it atomically (PNG, 150 dpi). The Agg backend is used unless one is already chosen, so
figures work on headless machines and in CI.
"""

from __future__ import annotations

import io
import os

import matplotlib

if "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .artifacts import atomic_write_bytes  # noqa: E402

STYLE = {"figure.dpi": 100, "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
plt.rcParams.update(STYLE)


def save_figure(fig, path, dpi: int = 150):
    """Save ``fig`` as PNG atomically, close it, and return the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def image_grid(images: np.ndarray, titles=None, ncols: int = 8, scale: float = 1.3, suptitle: str | None = None):
    """A grid of uint8 (or [0, 1] float) images with optional titles."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * scale, nrows * scale * (1.25 if titles is not None else 1)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        img = images[i]
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 1) if img.max() <= 1.0 else np.clip(img, 0, 255).astype(np.uint8)
        ax.imshow(img, interpolation="nearest")
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# --- section: training (augmentation grids, curves, LR finder) ---

# --- section: transfer ---

# --- section: diagnostics (confusion, misclassifications, Grad-CAM, robustness) ---

# --- section: calibration ---


def reliability_diagram_figure(bins: dict, ece: float, accuracy: float, mean_confidence: float, title: str | None = None):
    """Reliability diagram (top) and confidence histogram (bottom) in one figure.

    Args:
        bins: :func:`visiondl_keras.calibration.calibration_bins` output (edges, counts, accuracy, confidence).
        ece: the expected calibration error, shown in the legend.
        accuracy, mean_confidence: drawn as vertical lines on the histogram.
        title: figure title.
    """
    edges = np.asarray(bins["edges"])
    counts = np.asarray(bins["counts"])
    acc = np.nan_to_num(np.asarray(bins["accuracy"], dtype=float))
    conf = np.asarray(bins["confidence"], dtype=float)
    centers = (edges[:-1] + edges[1:]) / 2
    width = edges[1] - edges[0]
    filled = counts > 0
    fig, (ax, hx) = plt.subplots(2, 1, figsize=(4.6, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
    ax.bar(centers[filled], acc[filled], width=width, edgecolor="black", color="#4C72B0", label="accuracy")
    gap_lo = np.minimum(acc, np.nan_to_num(conf))[filled]
    gap_hi = np.maximum(acc, np.nan_to_num(conf))[filled]
    ax.bar(centers[filled], gap_hi - gap_lo, bottom=gap_lo, width=width, color="#DD8452", alpha=0.45,
           edgecolor="#DD8452", hatch="//", label="gap")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy")
    ax.legend(loc="upper left", fontsize=8, title=f"ECE = {100 * ece:.2f}%", title_fontsize=8)
    hx.bar(centers, counts / max(counts.sum(), 1), width=width, edgecolor="black", color="#8C8C8C")
    hx.axvline(accuracy, color="#4C72B0", lw=1.5, label=f"accuracy {accuracy:.3f}")
    hx.axvline(mean_confidence, color="#C44E52", lw=1.5, ls="--", label=f"mean confidence {mean_confidence:.3f}")
    hx.set_xlabel("confidence (top-label probability)")
    hx.set_ylabel("share of images")
    hx.legend(loc="upper left", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
