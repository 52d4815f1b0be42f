"""Every matplotlib figure of the package, so styling is consistent.

Functions take numpy arrays / dicts and return a ``matplotlib.figure.Figure``; ``save_figure``
writes it atomically (PNG, 150 dpi). The Agg backend is used unless one is already chosen, so
figures work on headless machines and in CI.
"""

from __future__ import annotations

import io
import os
import textwrap

import matplotlib

if "MPLBACKEND" not in os.environ:
    matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from visiondl_keras.data import augment  # noqa: E402
from visiondl_keras.io import atomic_write_bytes  # noqa: E402

# One size for every figure: shown at 100 dpi, no figure is wider than the book's text column at a 1280-px
# screen (MAX_WIDTH inches), and no text is smaller than MIN_FONT points (about 9.7 px at 100 dpi).
DPI = 100
MAX_WIDTH = 7.4
MIN_FONT = 7
MAX_COLUMNS = 8
STYLE = {"figure.dpi": DPI, "savefig.dpi": "figure", "font.size": 9, "axes.titlesize": 9.5, "axes.labelsize": 9,
         "xtick.labelsize": 8, "ytick.labelsize": 8, "legend.fontsize": 8, "figure.titlesize": 10,
         "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False}
plt.rcParams.update(STYLE)


def _figsize(width: float, height: float) -> tuple[float, float]:
    """``(width, height)`` in inches, scaled down together to at most ``MAX_WIDTH`` wide."""
    if width > MAX_WIDTH:
        height, width = height * MAX_WIDTH / width, MAX_WIDTH
    return (width, height)


def _fit(text: str, width_in: float, fontsize: float = MIN_FONT) -> str:
    """``text`` wrapped so that each line fits ``width_in`` inches at ``fontsize`` points (titles never overlap)."""
    import textwrap

    chars = max(6, int(width_in * 72 / (0.55 * fontsize)))
    return "\n".join(textwrap.fill(line, chars) for line in str(text).split("\n"))


def save_figure(fig, path, dpi: int = 150):
    """Save ``fig`` as PNG atomically, close it, and return the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())


def image_grid(images: np.ndarray, titles=None, ncols: int = 8, scale: float = 1.3, suptitle: str | None = None):
    """A grid of uint8 (or [0, 1] float) images with optional titles (at most ``MAX_COLUMNS`` columns)."""
    images = np.asarray(images)
    n = len(images)
    ncols = max(1, min(ncols, n, MAX_COLUMNS))
    scale = min(scale, MAX_WIDTH / ncols)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=_figsize(ncols * scale, nrows * scale * (1.25 if titles is not None else 1)), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        ax = axes.ravel()[i]
        img = images[i]
        if img.dtype != np.uint8:
            img = np.clip(img, 0, 1) if img.max() <= 1.0 else np.clip(img, 0, 255).astype(np.uint8)
        ax.imshow(img, interpolation="nearest")
        if titles is not None:
            ax.set_title(_fit(titles[i], scale), fontsize=MIN_FONT)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig


# --- section: training (augmentation grids, curves, LR finder) ---


def augmentation_grid(rows: np.ndarray, names=None, title: str | None = None):
    """Rows of images: ``rows[0]`` the originals, ``rows[1:]`` augmented versions (shape (R, N, H, W, C), 0-255)."""
    rows = np.asarray(rows)
    r, n = rows.shape[:2]
    fig, axes = plt.subplots(r, n, figsize=_figsize(n * 1.2, r * 1.25), squeeze=False)
    for i in range(r):
        for j in range(n):
            ax = axes[i, j]
            ax.imshow(np.clip(rows[i, j], 0, 255).astype(np.uint8), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0 and names is not None:
                ax.set_title(str(names[j]), fontsize=8)
        axes[i, 0].set_ylabel("original" if i == 0 else f"aug {i}", fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def training_curves(history: list[dict], title: str | None = None):
    """Loss and accuracy per epoch (train and validation) from ``history.csv`` rows."""
    epochs = [int(h["epoch"]) for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=_figsize(10, 3.6))
    for key, label in (("loss", "train"), ("val_loss", "validation")):
        if history and key in history[0]:
            ax1.plot(epochs, [float(h[key]) for h in history], marker=".", label=label)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax1.legend()
    for key, label in (("accuracy", "train"), ("val_accuracy", "validation")):
        if history and key in history[0]:
            ax2.plot(epochs, [float(h[key]) for h in history], marker=".", label=label)
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("accuracy")
    ax2.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def lr_schedule_plot(steps: np.ndarray, series: dict, ylabel: str = "learning rate"):
    """One line per named schedule over training steps."""
    fig, ax = plt.subplots(figsize=_figsize(6, 3.5))
    for name, values in series.items():
        ax.plot(steps, values, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.legend()
    fig.tight_layout()
    return fig


def lr_finder_plot(lrs: np.ndarray, losses: np.ndarray, suggested: float | None = None):
    """Smoothed loss against the learning rate (log scale) of an LR range test."""
    fig, ax = plt.subplots(figsize=_figsize(6, 3.5))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed loss")
    if suggested:
        ax.axvline(suggested, color="C3", ls="--", label=f"suggested {suggested:.3g}")
        ax.legend()
    fig.tight_layout()
    return fig


def ablation_bars(rows: list[dict], metric: str = "test_accuracy", title: str | None = None):
    """Bar chart of mean +- std of ``metric`` per policy (rows with policy, mean, std)."""
    fig, ax = plt.subplots(figsize=_figsize(7, 3.6))
    names = [r["policy"] for r in rows]
    means = [r["mean"] for r in rows]
    stds = [r["std"] for r in rows]
    ax.bar(range(len(rows)), means, yerr=stds, capsize=4, color="C0")
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(names, rotation=20, ha="right")
    ax.set_ylabel(metric.replace("_", " "))
    lo = min(m - s for m, s in zip(means, stds)) if rows else 0
    ax.set_ylim(max(0.0, lo - 0.05), min(1.0, max(m + s for m, s in zip(means, stds)) + 0.03) if rows else 1)
    if title:
        ax.set_title(textwrap.fill(title, 90))
    fig.tight_layout()
    return fig


def ablation_gap_bars(runs: list[dict], title: str | None = None):
    """Train (un-augmented images) and test accuracy per policy, mean over seeds with each seed as a dot.

    ``runs``: dicts with ``policy``, ``train_accuracy`` and ``test_accuracy`` (one per seed). The
    distance between a policy's two bars is its train-test gap.
    """
    policies = list(dict.fromkeys(r["policy"] for r in runs))
    fig, ax = plt.subplots(figsize=_figsize(7, 3.8))
    width = 0.38
    for k, (key, label, color) in enumerate((("train_accuracy", "train (un-augmented)", "C1"),
                                             ("test_accuracy", "test", "C0"))):
        xs = np.arange(len(policies)) + (k - 0.5) * width
        per = [[r[key] for r in runs if r["policy"] == p] for p in policies]
        ax.bar(xs, [np.mean(v) for v in per], width, label=label, color=color, alpha=0.85)
        for x, v in zip(xs, per):
            ax.plot([x] * len(v), v, "k.", ms=4)
    ax.set_xticks(range(len(policies)))
    ax.set_xticklabels(policies, rotation=20, ha="right")
    ax.set_ylabel("accuracy")
    lo = max(0.0, min(min(r["train_accuracy"], r["test_accuracy"]) for r in runs) - 0.05)
    ax.set_ylim(lo, 1.0 + 0.15 * (1.0 - lo))  # room for the legend above the bars
    ax.axhline(1.0, color="grey", lw=0.6)
    ax.legend(loc="upper center", ncols=2)
    if title:
        ax.set_title(textwrap.fill(title, 90))
    fig.tight_layout()
    return fig


def time_to_accuracy_plot(curves: dict, targets=(0.7, 0.75, 0.8, 0.85)):
    """Test accuracy against wall-clock seconds, one line per recipe; dotted lines at the targets."""
    fig, ax = plt.subplots(figsize=_figsize(7, 4))
    for name, (secs, accs) in curves.items():
        ax.plot(np.asarray(secs) / 60.0, accs, marker=".", label=name)
    for t in targets:
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    ax.set_xlabel("training time (minutes)")
    ax.set_ylabel("test accuracy")
    ax.legend()
    fig.tight_layout()
    return fig


# --- section: transfer ---


def transfer_accuracy_curves(
    runs: dict, x: str = "epoch", reference: dict | None = None, targets=(), title: str | None = None, styles: dict | None = None
):
    """Validation accuracy of each transfer run against epochs or wall-clock seconds, on one set of axes.

    Args:
        runs: ``{label: rows}``, each row a dict with ``epoch``, ``time_s`` and ``val_accuracy``
            (the ``history`` of a transfer-compare run).
        x: ``"epoch"`` or ``"time_s"`` (plotted in minutes when the longest run exceeds 5 minutes).
        reference: optional ``{"label": ..., "rows": [...]}`` (the scratch reference run), drawn dashed.
        targets: accuracies marked with dotted horizontal lines.
        title: figure title.
        styles: optional ``{label: matplotlib line kwargs}`` (e.g. colour per strategy, dash per backbone).

    Returns:
        A ``matplotlib.figure.Figure``.
    """
    if x not in ("epoch", "time_s"):
        raise ValueError(f"x must be 'epoch' or 'time_s', got {x!r}")
    styles = styles or {}
    series = [(label, rows, {"marker": ".", **styles.get(label, {})}) for label, rows in runs.items()]
    if reference and reference.get("rows"):
        series.append((reference.get("label", "scratch reference"), reference["rows"], {"color": "k", "ls": "--", "lw": 1.2}))
    longest = max((float(r["time_s"]) for _, rows, _ in series for r in rows), default=0.0)
    scale, unit = (60.0, "minutes") if x == "time_s" and longest > 300 else (1.0, "seconds")
    fig, ax = plt.subplots(figsize=_figsize(7.5, 4.2))
    for label, rows, style in series:
        xs = [float(r[x]) / (scale if x == "time_s" else 1.0) for r in rows]
        ax.plot(xs, [float(r["val_accuracy"]) for r in rows], label=label, **style)
    for t in targets:
        ax.axhline(t, color="grey", ls=":", lw=0.8)
    if x == "time_s":
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.set_xlabel(f"wall-clock training time ({unit}, log scale)")
    else:
        ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


# --- section: diagnostics (confusion, misclassifications, Grad-CAM, robustness) ---
def confusion_matrix_figure(normalized, class_names, counts=None, title: str = "Confusion matrix (row-normalised)"):
    """Heatmap of a row-normalised confusion matrix; cells show the rate (and the count when given)."""
    cm = np.asarray(normalized, dtype=float)
    k = len(class_names)
    fig, ax = plt.subplots(figsize=_figsize(0.62 * k + 2.2, 0.55 * k + 1.6))
    im = ax.imshow(cm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.grid(False)
    ax.set_xticks(range(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(k), class_names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(k):
        for j in range(k):
            text = f"{cm[i, j]:.2f}" if counts is None else f"{cm[i, j]:.2f}\n{int(np.asarray(counts)[i, j])}"
            ax.text(j, i, text, ha="center", va="center", fontsize=MIN_FONT, color="white" if cm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def per_class_figure(report: dict, title: str = "Per-class precision, recall and F1"):
    """Grouped bars of per-class precision / recall / F1 from ``diagnostics.classification_report``."""
    names = list(report["per_class"])
    metrics = ("precision", "recall", "f1")
    x = np.arange(len(names))
    fig, ax = plt.subplots(figsize=_figsize(max(6.0, 0.7 * len(names)), 3.4))
    for i, m in enumerate(metrics):
        ax.bar(x + (i - 1) * 0.27, [report["per_class"][n][m] for n in names], width=0.27, label=m)
    ax.set_xticks(x, names, rotation=30, ha="right")
    lo = min(min(report["per_class"][n][m] for n in names) for m in metrics)
    ax.set_ylim(max(0.0, lo - 0.1), 1.0)
    ax.set_ylabel("score")
    ax.legend(ncols=3, fontsize=8, loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def misclassification_gallery(images, items, ncols: int = 8, title: str = "Highest-loss test images"):
    """Gallery of the review items (``diagnostics.misclassification_review``) with their images."""
    titles = [f"#{it['index']} T: {it['true']}\nP: {it['predicted']} {it['confidence']:.2f}" for it in items]
    fig = image_grid(np.asarray(images), titles=titles, ncols=ncols, scale=1.5, suptitle=title)
    for ax, it in zip(fig.axes, items):
        ax.title.set_color("tab:green" if it["true"] == it["predicted"] else "tab:red")
    return fig


def gradcam_gallery(images, overlays, titles, correct, extra_overlays=None, row_labels=("image", "Grad-CAM", "Grad-CAM++"),
                    ncols: int = MAX_COLUMNS, title: str | None = None):
    """Grad-CAM gallery: per example a column with the image, its overlay(s); green/red titles = right/wrong.

    Args:
        images: (N, H, W, 3) uint8 images.
        overlays: (N, H, W, 3) uint8 heatmap overlays (``gradcam.overlay_heatmap``).
        titles: N strings.
        correct: N booleans (title colour).
        extra_overlays: optional second method's overlays (a third row per block).
        row_labels: labels of the rows of a block.
        ncols: examples per block of rows.
        title: figure title.
    """
    images = np.asarray(images)
    n = len(images)
    per = 2 if extra_overlays is None else 3
    ncols = max(1, min(ncols, n, MAX_COLUMNS))
    blocks = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(blocks * per, ncols, figsize=_figsize(ncols * 1.25, blocks * per * 1.3 + 0.6), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i in range(n):
        b, c = divmod(i, ncols)
        rows = [images[i], overlays[i]] + ([] if extra_overlays is None else [extra_overlays[i]])
        for r, img in enumerate(rows):
            ax = axes[b * per + r, c]
            ax.imshow(img, interpolation="nearest")
            if r == 0:
                ax.set_title(_fit(titles[i], MAX_WIDTH / ncols), fontsize=MIN_FONT, color="tab:green" if correct[i] else "tab:red")
            if c == 0:
                ax.axis("on")
                ax.set_xticks([])
                ax.set_yticks([])
                ax.grid(False)
                for s in ax.spines.values():
                    s.set_visible(False)
                ax.set_ylabel(row_labels[r], fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def sanity_check_figure(result: dict, images=None, original_overlays=None, randomized_overlays=None):
    """Cascading randomisation (Adebayo et al.): mean Spearman per step, and example maps before/after."""
    steps = result["steps"]
    n_ex = 0 if images is None else min(6, len(images))
    fig = plt.figure(figsize=_figsize(10, 3.2 if n_ex == 0 else 6.0))
    outer = fig.add_gridspec(2 if n_ex else 1, 1, height_ratios=[1.5, 1] if n_ex else [1])
    ax = fig.add_subplot(outer[0])
    xs = np.arange(1, len(steps) + 1)
    ax.plot(xs, [s["mean_spearman"] for s in steps], "o-", label="mean")
    ax.fill_between(xs, [s["min_spearman"] for s in steps], [s["max_spearman"] for s in steps], alpha=0.2, label="min-max")
    ax.axhline(result["threshold"], color="tab:red", ls="--", lw=1, label=f"threshold {result['threshold']}")
    ax.set_xticks(xs, [s["reinitialised"][-1] for s in steps], rotation=15, fontsize=7)
    ax.set_xlabel("re-initialised down to layer (cumulative)")
    ax.set_ylabel("Spearman vs original")
    ax.set_ylim(-0.5, 1.05)
    ax.legend(fontsize=7)
    verdict = "passed" if result["passed"] else "FAILED"
    ax.set_title(f"Grad-CAM sanity check ({result['layer']}): {verdict}, mean Spearman {result['mean_spearman']:.2f}")
    if n_ex:
        gs = outer[1].subgridspec(1, 3 * n_ex, wspace=0.08)
        for i in range(n_ex):
            for r, (img, lab) in enumerate(((images[i], "image"), (original_overlays[i], "original"),
                                            (randomized_overlays[i], "randomised"))):
                a = fig.add_subplot(gs[0, 3 * i + r])
                a.imshow(img, interpolation="nearest")
                a.axis("off")
                a.set_title(lab, fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


def robustness_curves(noise: dict | None, attacks: dict | None, title: str | None = None):
    """Accuracy vs Gaussian-noise sigma, and vs FGSM / PGD epsilon (both in 0-255 pixel units)."""
    panels = [p for p in (noise, attacks) if p]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=_figsize(4.6 * max(1, len(panels)), 3.4), squeeze=False)
    k = 0
    if noise:
        ax = axes[0, k]
        ax.plot(noise["sigmas"], noise["accuracy"], "o-", color="tab:blue")
        ax.set_xlabel("Gaussian noise sigma (/255)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("Gaussian noise")
        k += 1
    if attacks:
        ax = axes[0, k]
        ax.plot(attacks["epsilons"], attacks["fgsm_accuracy"], "o-", label="FGSM")
        ax.plot(attacks["epsilons"], attacks["pgd_accuracy"], "s-", label=f"PGD-{attacks.get('pgd_steps', 10)}")
        ax.set_xlabel("epsilon (/255, L-inf)")
        ax.set_ylabel("accuracy")
        ax.set_ylim(0, 1)
        ax.legend()
        ax.set_title("Adversarial attacks")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def corruption_heatmap(bench: dict, title: str | None = None):
    """Accuracy per corruption (rows) and severity (columns), with row means and the clean accuracy."""
    names = bench["corruptions"]
    sevs = bench["severities"]
    acc = np.array([bench["accuracy"][c] for c in names], dtype=float)
    fig, ax = plt.subplots(figsize=_figsize(1.0 * len(sevs) + 3.6, 0.36 * len(names) + 1.6))
    table = np.concatenate([acc, acc.mean(axis=1, keepdims=True)], axis=1)
    im = ax.imshow(table, cmap="RdYlGn", vmin=0.0, vmax=1.0, aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(sevs) + 1), [str(s) for s in sevs] + ["mean"])
    ax.set_yticks(range(len(names)), [n.replace("_", " ") for n in names], fontsize=8)
    ax.set_xlabel("severity")
    ax.axvline(len(sevs) - 0.5, color="white", lw=2)
    for i in range(table.shape[0]):
        for j in range(table.shape[1]):
            ax.text(j, i, f"{table[i, j]:.2f}", ha="center", va="center", fontsize=7)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="accuracy")
    ax.set_title(
        title
        or f"Corruption accuracy: mean {bench['mean_corruption_accuracy']:.3f} "
        f"(clean {bench['clean_accuracy']:.3f}, ratio {bench['relative_accuracy']:.2f})",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def corruption_examples_figure(image, corrupted: dict, severities=(1, 2, 3, 4, 5)):
    """One image under every corruption (rows) and severity (columns); ``corrupted[name]`` = list of images."""
    names = list(corrupted)
    fig, axes = plt.subplots(len(names), len(severities) + 1, figsize=_figsize(1.1 * (len(severities) + 1) + 0.8, 1.1 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        row = [image] + list(corrupted[name])
        for j, img in enumerate(row):
            ax = axes[i, j]
            ax.imshow(img, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.grid(False)
            if i == 0:
                ax.set_title("clean" if j == 0 else f"severity {severities[j - 1]}", fontsize=7)
            if j == 0:
                ax.set_ylabel(name.replace("_", "\n"), fontsize=MIN_FONT)
    fig.tight_layout()
    return fig


# --- section: calibration ---


def reliability_diagram_figure(bins: dict, ece: float, accuracy: float, mean_confidence: float, title: str | None = None):
    """Reliability diagram (top) and confidence histogram (bottom) in one figure.

    Args:
        bins: :func:`visiondl_keras.evaluation.calibration.calibration_bins` output (edges, counts, accuracy, confidence).
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
    fig, (ax, hx) = plt.subplots(2, 1, figsize=_figsize(4.6, 5.6), sharex=True, gridspec_kw={"height_ratios": [3, 1.2]})
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


def sample_grid(images: np.ndarray, labels: np.ndarray, policy: augment.Policy | str, n_images: int = 8, n_versions: int = 4,
                class_names=None, seed: int = 0):
    """A figure: ``n_images`` originals (first row) and ``n_versions`` augmented versions of each.

    Returns:
        A matplotlib Figure (save it with ``plots.save_figure``).
    """
    policy = augment.get_policy(policy) if isinstance(policy, str) else policy
    x, y = np.asarray(images[:n_images]), np.asarray(labels[:n_images])
    rows = [x.astype(np.float32)]
    for v in range(n_versions):
        xa, _ = policy(x, y, np.random.default_rng([seed, v]))
        rows.append(xa)
    names = [class_names[int(t)] for t in y] if class_names is not None else None
    return augmentation_grid(np.stack(rows), names, title=f"policy: {policy.name}")
