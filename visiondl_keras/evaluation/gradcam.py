"""Grad-CAM, Grad-CAM++, overlays, galleries and the model-randomisation sanity check.

Grad-CAM (Selvaraju et al., 2017) explains a class score with the last convolutional feature
map ``A`` (shape h x w x C): each channel is weighted by the spatial average of the score's
gradient with respect to it, the weighted channels are summed, and a ReLU keeps the evidence
*for* the class. Grad-CAM++ (Chattopadhay et al., 2018) replaces the plain average by
pixel-wise weights that give several instances of a class a fairer share.

The gradient work goes through :mod:`visiondl_keras.evaluation.gradients` (TensorFlow, JAX and PyTorch);
the rest is numpy. :func:`gradcam_sanity_check` implements the model-parameter randomisation
test of Adebayo et al. (2018): if the maps hardly change when the top layers are
re-initialised, they do not explain *this* model.

Example:
    >>> maps = gradcam(model, x_test[:16])  # doctest: +SKIP
    >>> maps.shape, float(maps.max()) <= 1.0  # doctest: +SKIP
    ((16, 32, 32), True)
"""

from __future__ import annotations

import keras
import matplotlib
import numpy as np
from scipy.stats import spearmanr

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import find_layer, flatten_layers, layer_activations_and_gradients

__all__ = [
    "METHODS",
    "gradcam",
    "gradcam_from_activations",
    "gradcam_plus_plus_from_activations",
    "gradcam_sanity_check",
    "overlay_heatmap",
    "select_gallery_examples",
    "upsample_maps",
]

METHODS = ("gradcam", "gradcam++")


def _check_pair(activations, gradients):
    a = np.asarray(activations, dtype=np.float64)
    g = np.asarray(gradients, dtype=np.float64)
    if a.ndim != 4 or a.shape != g.shape:
        raise ConfigError(
            f"activations and gradients must both have shape (N, h, w, C); got {a.shape} and {g.shape}."
        )
    return a, g


def _normalise(cam: np.ndarray) -> np.ndarray:
    """ReLU, then divide each map by its maximum (a map without positive evidence stays zero)."""
    cam = np.maximum(cam, 0.0)
    peak = cam.reshape(len(cam), -1).max(axis=1).reshape(-1, 1, 1) if len(cam) else np.ones((0, 1, 1))
    return (cam / np.where(peak > 0, peak, 1.0)).astype(np.float32)


def gradcam_from_activations(activations, gradients) -> np.ndarray:
    """The Grad-CAM weighting step, in numpy.

    Weights each channel by the global average of its gradient, sums the weighted channels,
    applies a ReLU and divides each map by its maximum, so values lie in [0, 1] (a map with no
    positive evidence is all zeros).

    Args:
        activations: (N, h, w, C) feature maps.
        gradients: (N, h, w, C) gradients of the class score with respect to them.

    Returns:
        float32 maps (N, h, w) in [0, 1], at the feature-map resolution.

    Example:
        >>> a = np.zeros((1, 2, 2, 2)); a[0, 0, 0, 0] = 1.0; a[0, 1, 1, 1] = 1.0
        >>> g = np.zeros_like(a); g[..., 0] = 1.0; g[..., 1] = -1.0
        >>> gradcam_from_activations(a, g)[0].tolist()
        [[1.0, 0.0], [0.0, 0.0]]
    """
    a, g = _check_pair(activations, gradients)
    weights = g.mean(axis=(1, 2))  # (N, C)
    cam = np.einsum("nhwc,nc->nhw", a, weights)
    return _normalise(cam)


def gradcam_plus_plus_from_activations(activations, gradients) -> np.ndarray:
    """The Grad-CAM++ weighting step, in numpy.

    Pixel-wise weights ``alpha = g^2 / (2 g^2 + sum_ij(A) g^3)`` (the closed form of
    Chattopadhay et al. with an exponential score, whose factor cancels), normalised per
    channel; channel weights ``w_c = sum_ij alpha * relu(g)``; then weighted sum, ReLU and
    division by the maximum as in :func:`gradcam_from_activations`.

    Args:
        activations: (N, h, w, C) feature maps.
        gradients: (N, h, w, C) gradients of the class score with respect to them.

    Returns:
        float32 maps (N, h, w) in [0, 1].
    """
    a, g = _check_pair(activations, gradients)
    g2, g3 = g**2, g**3
    global_sum = a.sum(axis=(1, 2), keepdims=True)
    denom = 2.0 * g2 + g3 * global_sum
    denom = np.where(denom != 0.0, denom, 1.0)
    alphas = g2 / denom
    norm = alphas.sum(axis=(1, 2), keepdims=True)
    alphas = alphas / np.where(norm != 0.0, norm, 1.0)
    weights = (alphas * np.maximum(g, 0.0)).sum(axis=(1, 2))  # (N, C)
    cam = np.einsum("nhwc,nc->nhw", a, weights)
    return _normalise(cam)


def _interp_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) linear-interpolation matrix with corners aligned (``scipy.ndimage.zoom``, order 1)."""
    if n_in == 1:
        return np.ones((n_out, 1))
    pos = np.arange(n_out) * (n_in - 1) / max(n_out - 1, 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_in - 2)
    frac = pos - lo
    m = np.zeros((n_out, n_in))
    m[np.arange(n_out), lo] = 1.0 - frac
    m[np.arange(n_out), lo + 1] += frac
    return m


def upsample_maps(maps, size) -> np.ndarray:
    """Bilinear upsampling of (N, h, w) maps to (N, H, W), corners aligned, renormalised to [0, 1].

    The corner-aligned grid is the one of ``scipy.ndimage.zoom(order=1)`` (and tf-keras-vis);
    each map is divided again by its maximum so the peak is 1.

    Args:
        maps: (N, h, w) maps in [0, 1].
        size: ``(H, W)``.

    Returns:
        float32 (N, H, W).
    """
    maps = np.asarray(maps, dtype=np.float64)
    H, W = int(size[0]), int(size[1])
    rows, cols = _interp_matrix(maps.shape[1], H), _interp_matrix(maps.shape[2], W)
    up = np.einsum("Hh,nhw,Ww->nHW", rows, maps, cols)
    return _normalise(up)


def gradcam(model, images, class_index=None, layer=None, method: str = "gradcam", batch_size: int = 64) -> np.ndarray:
    """Grad-CAM (or Grad-CAM++) maps of ``images`` at the input resolution.

    Args:
        model: a ``keras.Model``; for this package's models the score is the class logit.
        images: (N, H, W, 3) images on the model's input scale (0-255 RGB for this package).
        class_index: None (each image's predicted class), an int, or one int per image.
        layer: None (the last convolutional feature map, found automatically, also inside a
            nested pretrained backbone), a layer name, an ``"outer/inner"`` path or a layer.
        method: ``"gradcam"`` or ``"gradcam++"``.
        batch_size: images per backward pass.

    Returns:
        float32 array (N, H, W) with values in [0, 1] (each map's peak is 1, unless the map has
        no positive evidence at all, in which case it is all zeros).

    Raises:
        ConfigError: unknown method or layer, bad ``class_index``.
        ModelError: no convolutional layer to explain.

    Example:
        >>> from visiondl_keras.models import build_resnet9
        >>> model = build_resnet9(width=4)
        >>> x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 3))
        >>> gradcam(model, x, class_index=3).shape
        (2, 32, 32)
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {METHODS}, got {method!r}.")
    x = np.asarray(images)
    if x.ndim != 4:
        raise ConfigError(f"images must be a batch (N, H, W, C), got shape {x.shape}.")
    acts, grads, _ = layer_activations_and_gradients(model, x, layer=layer, class_index=class_index, batch_size=batch_size)
    combine = gradcam_from_activations if method == "gradcam" else gradcam_plus_plus_from_activations
    return upsample_maps(combine(acts, grads), x.shape[1:3])


def overlay_heatmap(image, heatmap, alpha: float = 0.45, cmap: str = "jet") -> np.ndarray:
    """Blend a [0, 1] heatmap, coloured with a matplotlib colormap, over an RGB image.

    Args:
        image: (H, W, 3) uint8 (or 0-255 float) image.
        heatmap: (H, W) values in [0, 1] (e.g. one map from :func:`gradcam`); another size is
            resized bilinearly to the image's.
        alpha: weight of the heatmap (0: the image only, 1: the heatmap only).
        cmap: a matplotlib colormap name.

    Returns:
        uint8 (H, W, 3) image.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ConfigError(f"image must have shape (H, W, 3), got {img.shape}.")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"alpha must lie in [0, 1], got {alpha}.")
    hm = np.asarray(heatmap, dtype=np.float64)
    if hm.shape != img.shape[:2]:
        hm = upsample_maps(hm[None], img.shape[:2])[0]
    colours = matplotlib.colormaps[cmap](np.clip(hm, 0.0, 1.0))[..., :3] * 255.0
    return np.clip((1.0 - alpha) * img + alpha * colours, 0, 255).round().astype(np.uint8)


def select_gallery_examples(probs, labels, n: int = 24, wrong_fraction: float = 0.5, seed: int = 0) -> np.ndarray:
    """Indices of a gallery that mixes correct and wrong predictions across classes.

    About ``wrong_fraction`` of the examples are misclassified; classes are visited round-robin
    (by true label) so every class appears; within a class the most confident examples come
    first (deterministic for a given ``seed``, which only orders the classes).

    Args:
        probs: (N, K) predicted probabilities.
        labels: (N,) true labels.
        n: gallery size.
        wrong_fraction: share of misclassified examples (fewer when there are not enough).
        seed: seed of the class order.

    Returns:
        int64 indices, correct examples first, then wrong ones.
    """
    probs = np.asarray(probs)
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    conf = probs.max(axis=1)
    classes = np.random.default_rng(seed).permutation(np.unique(labels))
    n_wrong = min(int(round(n * wrong_fraction)), int((pred != labels).sum()))
    n_right = min(n - n_wrong, int((pred == labels).sum()))

    def pick(mask, k):
        queues = {c: list(np.flatnonzero(mask & (labels == c))[np.argsort(-conf[mask & (labels == c)], kind="stable")])
                  for c in classes}
        out = []
        while len(out) < k and any(queues.values()):
            for c in classes:
                if queues[c] and len(out) < k:
                    out.append(queues[c].pop(0))
        return out

    return np.array(pick(pred == labels, n_right) + pick(pred != labels, n_wrong), dtype=np.int64)


# --------------------------------------------------------------------------------------------
# Sanity check (Adebayo et al., 2018)
# --------------------------------------------------------------------------------------------


def _reinitialise(layer, rng: np.random.Generator) -> None:
    """Re-draw every weight of ``layer`` from the initializer the layer was built with."""
    for var in layer.weights:
        name = var.path.split("/")[-1]
        init = getattr(layer, f"{name}_initializer", None)
        if init is None:
            init = keras.initializers.Zeros() if "bias" in name or "beta" in name or "mean" in name else keras.initializers.GlorotUniform()
        config = init.get_config()
        if "seed" in config:
            config["seed"] = int(rng.integers(2**31 - 1))
            init = init.__class__.from_config(config)
        var.assign(init(tuple(var.shape), dtype=var.dtype))


def _spearman_per_map(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.full(len(a), np.nan)
    for i in range(len(a)):
        x, y = a[i].ravel(), b[i].ravel()
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            out[i] = spearmanr(x, y).statistic
        elif np.ptp(x) > 0 or np.ptp(y) > 0:
            out[i] = 0.0  # one map carries no ranking at all: no agreement
    return out


def _top_weighted_layers(model, num_layers: int) -> list:
    """The ``num_layers`` weighted leaf layers nearest the output, as ``(path, layer)``, top first."""

    def has_initializers(lyr):
        return any(getattr(lyr, f"{v.path.split('/')[-1]}_initializer", None) is not None for v in lyr.weights)

    weighted = [
        (p, lyr) for p, lyr in flatten_layers(model) if lyr.weights and not hasattr(lyr, "layers") and has_initializers(lyr)
    ]
    return list(reversed(weighted))[:num_layers]


def _spearman_summary(rho: np.ndarray) -> dict:
    """Mean, median, min and max of the defined correlations, and how many were undefined."""
    finite = rho[np.isfinite(rho)]

    def stat(fn):
        return float(fn(finite)) if finite.size else float("nan")

    return {
        "mean_spearman": stat(np.mean),
        "median_spearman": stat(np.median),
        "min_spearman": stat(np.min),
        "max_spearman": stat(np.max),
        "undefined": int((~np.isfinite(rho)).sum()),
    }


def gradcam_sanity_check(
    model,
    images,
    class_index=None,
    layer=None,
    num_layers: int = 3,
    method: str = "gradcam",
    threshold: float = 0.5,
    seed: int = 0,
    batch_size: int = 64,
    return_maps: bool = False,
):
    """Model-parameter randomisation test of Adebayo et al. (2018) for Grad-CAM.

    Computes the maps, then re-initialises the weighted layers from the top of the model down
    (cascading: first the top one, then the top two, ...; ``num_layers`` in all, nested models
    included) and recomputes the maps for the *same* classes after each step. A map method
    that explains the model must change: the Spearman rank correlation between the original
    and the randomised maps should fall below ``threshold``. The model's weights are restored
    afterwards.

    Args:
        model: a trained ``keras.Model``.
        images: (N, H, W, 3) images.
        class_index: as in :func:`gradcam`; None uses the *original* model's predictions for
            every step.
        layer: as in :func:`gradcam` (resolved once, on the original model).
        num_layers: how many weighted layers, counted from the output, end up re-initialised.
        method: ``"gradcam"`` or ``"gradcam++"``.
        threshold: pass when the mean Spearman correlation after the full randomisation is
            below it.
        seed: seed of the new weights.
        batch_size: images per backward pass.
        return_maps: also return the original and the fully randomised maps.

    Returns:
        A dict (with ``return_maps``: ``(dict, original_maps, randomised_maps)``): ``layer`` (the explained layer), ``steps`` (per cascade step: the layers
        re-initialised so far and the mean / median / min / max Spearman correlation over the
        images), ``spearman_per_image`` (after the last step), ``mean_spearman``, ``threshold``
        and ``passed``.
    """
    if num_layers < 1:
        raise ConfigError(f"num_layers must be at least 1, got {num_layers}.")
    path, target = find_layer(model, layer)
    x = np.asarray(images)
    acts, grads, outs = layer_activations_and_gradients(model, x, layer=target, class_index=class_index, batch_size=batch_size)
    combine = gradcam_from_activations if method == "gradcam" else gradcam_plus_plus_from_activations
    original = upsample_maps(combine(acts, grads), x.shape[1:3])
    classes = outs.argmax(axis=1) if class_index is None else class_index

    top = _top_weighted_layers(model, num_layers)
    saved = [[np.array(keras.ops.convert_to_numpy(v.value)) for v in lyr.weights] for _, lyr in top]
    rng = np.random.default_rng(seed)
    steps = []
    rho = np.full(len(x), np.nan)
    maps = original
    try:
        for k, (_, lyr) in enumerate(top, start=1):
            _reinitialise(lyr, rng)
            maps = gradcam(model, x, class_index=classes, layer=target, method=method, batch_size=batch_size)
            rho = _spearman_per_map(original, maps)
            steps.append({"reinitialised": [q for q, _ in top[:k]], **_spearman_summary(rho)})
    finally:
        for (_, lyr), values in zip(top, saved):
            for var, val in zip(lyr.weights, values):
                var.assign(val)
    final = steps[-1]["mean_spearman"]
    result = {
        "method": method,
        "layer": path,
        "num_images": int(len(x)),
        "steps": steps,
        "spearman_per_image": [None if not np.isfinite(r) else float(r) for r in rho],
        "mean_spearman": final,
        "threshold": float(threshold),
        "passed": bool(np.isfinite(final) and final < threshold),
    }
    return (result, original, maps) if return_maps else result
