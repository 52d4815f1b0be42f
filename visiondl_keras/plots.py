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
