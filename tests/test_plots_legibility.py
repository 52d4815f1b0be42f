"""The package's figures stay legible in the book: within the text column, no tiny text, no overlapping titles."""

from __future__ import annotations

import numpy as np
import pytest

from visiondl_keras.reporting import plots


def _texts(fig):
    renderer = fig.canvas.get_renderer()
    return [t for t in fig.findobj(match=lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text"))
            if t.get_text().strip() and t.get_visible()], renderer


def _figures():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    long_titles = [f"airplane 0.{k}0 / automobile 0.{9 - k}0" for k in range(10)] + ["frog"] * 6
    history = [{"epoch": e, "loss": 2.0 / e, "accuracy": 0.3 + 0.05 * e, "val_loss": 2.1 / e,
                "val_accuracy": 0.3 + 0.04 * e, "lr": 0.1} for e in range(1, 6)]
    cm = rng.random((10, 10))
    yield "image_grid", plots.image_grid(images, long_titles, ncols=12)
    yield "gradcam_gallery", plots.gradcam_gallery(images, images, [f"cat -> dog {k}" for k in range(16)],
                                                   [k % 2 == 0 for k in range(16)], ncols=12)
    yield "training_curves", plots.training_curves(history, title="a run")
    yield "confusion", plots.confusion_matrix_figure(cm / cm.sum(1, keepdims=True), [f"class {k}" for k in range(10)])
    budget = "fast recipe (airbench widths [32, 128, 128]), 10 epochs, 45000 training images, 10000 test images, batch 1024"
    runs = [{"policy": p, "seed": s, "train_accuracy": 0.97 - 0.02 * k, "test_accuracy": 0.88 + 0.003 * s}
            for k, p in enumerate(["none", "altflip", "altflip+translate", "altflip+translate+randaugment"])
            for s in (0, 1)]
    yield "ablation_gap_bars", plots.ablation_gap_bars(runs, title=f"train (un-augmented) vs test accuracy ({budget})")
    rows = [{"policy": p, "mean": 0.9, "std": 0.003} for p in ("none", "altflip+translate+cutmix")]
    yield "ablation_bars", plots.ablation_bars(rows, title=f"augmentation ablation ({budget})")


@pytest.mark.parametrize("name, fig", list(_figures()), ids=lambda v: v if isinstance(v, str) else "")
def test_figure_fits_the_column_with_readable_text(name, fig):
    width, _ = fig.get_size_inches()
    assert width <= plots.MAX_WIDTH + 1e-6, f"{name}: {width:.2f} in wide"
    texts, renderer = _texts(fig)
    small = [(t.get_text(), t.get_fontsize()) for t in texts if t.get_fontsize() < plots.MIN_FONT]
    assert not small, f"{name}: text below {plots.MIN_FONT} pt: {small[:5]}"
    # at the book's 100 dpi, MIN_FONT points are at least 9 px
    assert plots.MIN_FONT * plots.DPI / 72 >= 9
    columns = {round(ax.get_position().x0, 3) for ax in fig.axes if ax.images}
    assert len(columns) <= plots.MAX_COLUMNS, f"{name}: {len(columns)} columns of images"
    titles = [ax.title.get_window_extent(renderer) for ax in fig.axes if ax.get_title()]
    overlaps = [(a, b) for i, a in enumerate(titles) for b in titles[i + 1:] if a.overlaps(b)]
    assert not overlaps, f"{name}: {len(overlaps)} pairs of overlapping titles"
