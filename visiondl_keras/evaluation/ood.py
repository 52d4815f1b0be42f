"""Out-of-distribution caution: flag inputs that look unlike CIFAR-10 (lesson 9).

A classifier always answers with one of its ten classes, even for a photo of a circuit board. The
simplest useful warning is the maximum calibrated probability, ``score = max_k softmax(z / T)_k``
(Hendrycks & Gimpel, 2017): in-distribution images mostly get a confident answer, unfamiliar ones
less often. The threshold is chosen on the **validation split** for a stated in-distribution
acceptance rate (default 95%: 5% of real CIFAR-10 validation images are flagged too), stored in the
calibration sidecar beside the temperature, copied into exports' metadata, and used by the inference
command (``"ood": true`` plus the score in its JSON). The score is computed from probabilities, so the
same rule works for ``.keras``, SavedModel and TFLite models.

How well it separates is measured, not assumed: :func:`ood_benchmark` reports the AUROC between the
in-distribution test split and out-of-distribution sets that can be built offline
(:func:`ood_sets`): uniform noise, flat colours, synthetic textures (stripes, checkerboards),
severity-5 corruptions of test images, and crops of photographs and icons shipped with matplotlib.
It is a caution, not a detector: many unfamiliar images still get confident answers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from visiondl_keras.errors import ConfigError

DEFAULT_ACCEPTANCE = 0.95
OOD_FAMILIES = ("uniform_noise", "flat_colour", "textures", "corrupted_severity5", "package_images")


def msp_score(probs: np.ndarray) -> np.ndarray:
    """The maximum calibrated probability of each row (higher: more like the training data)."""
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2:
        raise ConfigError(f"probs must be (N, classes), got shape {probs.shape}.")
    return probs.max(axis=1)


def fit_threshold(val_scores: np.ndarray, acceptance: float = DEFAULT_ACCEPTANCE) -> float:
    """The score threshold that accepts a fraction ``acceptance`` of the validation images.

    Inputs with ``score < threshold`` are flagged; by construction about ``1 - acceptance`` of
    in-distribution images are flagged as well.
    """
    if not 0 < acceptance < 1:
        raise ConfigError(f"acceptance must lie in (0, 1), got {acceptance}.")
    scores = np.asarray(val_scores, dtype=np.float64)
    if scores.size == 0:
        raise ConfigError("no validation scores to fit the threshold on.")
    return float(np.quantile(scores, 1.0 - acceptance, method="lower"))


def is_ood(scores, threshold: float) -> np.ndarray:
    """``True`` where the score is below the threshold."""
    return np.asarray(scores, dtype=np.float64) < float(threshold)


def auroc(in_scores, out_scores) -> float:
    """Area under the ROC curve for telling in-distribution (positive, higher score) from OOD inputs."""
    from sklearn.metrics import roc_auc_score

    y = np.r_[np.ones(len(in_scores)), np.zeros(len(out_scores))]
    return float(roc_auc_score(y, np.r_[np.asarray(in_scores, np.float64), np.asarray(out_scores, np.float64)]))


def _textures(n: int, rng: np.random.Generator) -> np.ndarray:
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float64)
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        a, b = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        if i % 2:
            period = rng.integers(2, 9)
            mask = ((yy // period + xx // period) % 2).astype(bool)
        else:
            angle, freq = rng.uniform(0, np.pi), rng.uniform(0.2, 1.5)
            mask = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy)) > 0
        out[i] = np.where(mask[..., None], a, b).astype(np.uint8)
    return out


def _package_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """Random square crops, shrunk to 32x32, of the photographs and icons matplotlib ships."""
    import matplotlib
    from PIL import Image

    root = Path(matplotlib.__file__).resolve().parent / "mpl-data"
    files = sorted((root / "sample_data").glob("*.jpg")) + sorted((root / "sample_data").glob("*.png"))
    files += sorted((root / "images").glob("*_large.png"))
    sources = []
    for f in files:
        with Image.open(f) as im:
            sources.append(np.asarray(im.convert("RGBA").convert("RGB")))
    out = np.empty((n, 32, 32, 3), np.uint8)
    for i in range(n):
        src = sources[i % len(sources)]
        h, w = src.shape[:2]
        side = int(rng.integers(min(h, w) // 3, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(src[top:top + side, left:left + side]).resize((32, 32), Image.Resampling.BOX)
        out[i] = np.asarray(crop)
    return out


def ood_sets(test_images: np.ndarray, n: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Out-of-distribution image sets built offline, each ``(n, 32, 32, 3)`` uint8 (see the module docstring).

    Args:
        test_images: in-distribution test images (the corrupted set is made from them).
        n: images per set.
        seed: makes every set reproducible.
    """
    from visiondl_keras.evaluation.corruptions import corrupt

    rng = np.random.default_rng(seed)
    pick = rng.choice(len(test_images), size=min(n, len(test_images)), replace=False)
    names = ("gaussian_noise", "contrast", "fog", "pixelate", "glass_blur")
    corrupted = np.concatenate([corrupt(test_images[pick[i::len(names)]], name, 5, seed=seed)
                                for i, name in enumerate(names)])
    return {
        "uniform_noise": rng.integers(0, 256, size=(n, 32, 32, 3), dtype=np.uint8),
        "flat_colour": np.broadcast_to(rng.integers(0, 256, size=(n, 1, 1, 3)), (n, 32, 32, 3)).astype(np.uint8),
        "textures": _textures(n, rng),
        "corrupted_severity5": corrupted.astype(np.uint8),
        "package_images": _package_images(n, rng),
    }


def ood_benchmark(predict_probs, val_images, test_images, threshold: float | None = None,
                  acceptance: float = DEFAULT_ACCEPTANCE, n: int = 500, seed: int = 0, test_probs=None) -> dict:
    """AUROC and flag rates of the max-probability caution, in-distribution test split vs each OOD set.

    Args:
        predict_probs: ``images (uint8 N x 32 x 32 x 3) -> calibrated probabilities``.
        val_images: validation images (to fit the threshold when ``threshold`` is None).
        test_images: in-distribution test images.
        threshold, acceptance: a fitted threshold, or the acceptance rate to fit one for.
        n, seed: size and seed of each OOD set.
        test_probs: the test images' calibrated probabilities when the caller has them already.

    Returns:
        ``{"score", "threshold", "acceptance", "test_flagged", "families": {name: {"auroc", "flagged", "n"}},
        "mean_auroc", "n_test"}``.
    """
    if threshold is None:
        threshold = fit_threshold(msp_score(predict_probs(val_images)), acceptance)
    test_scores = msp_score(predict_probs(test_images) if test_probs is None else test_probs)
    families = {}
    for name, images in ood_sets(test_images, n, seed).items():
        scores = msp_score(predict_probs(images))
        families[name] = {"auroc": auroc(test_scores, scores), "flagged": float(is_ood(scores, threshold).mean()),
                          "n": int(len(images))}
    return {"score": "max calibrated probability", "threshold": float(threshold), "acceptance": float(acceptance),
            "test_flagged": float(is_ood(test_scores, threshold).mean()), "n_test": int(len(test_images)),
            "families": families, "mean_auroc": float(np.mean([f["auroc"] for f in families.values()]))}


def ood_rule(threshold: float, acceptance: float = DEFAULT_ACCEPTANCE) -> dict:
    """The record stored in the calibration sidecar and in exports' metadata."""
    return {"score": "max calibrated probability", "threshold": float(threshold), "acceptance": float(acceptance),
            "fitted_on": "validation split"}
