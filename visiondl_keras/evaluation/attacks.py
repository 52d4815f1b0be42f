"""Adversarial and noise robustness: Gaussian noise sweep, FGSM and PGD attacks, and their self-checks.

**Units.** Images are RGB on the 0-255 scale (this package's models normalise internally).
Noise levels ``sigma`` and attack budgets ``epsilon`` are given *in pixel units of that
scale*: ``epsilon=8.0`` is the usual "8/255" (8/255 of the full range), ``sigma=16.0`` is
"16/255". Perturbed images are clipped to the valid range [0, 255]. Attacks are L-infinity
and untargeted, on the cross-entropy loss of the true label, with gradients from
:mod:`visiondl_keras.evaluation.gradients` (TensorFlow, JAX or PyTorch).

The CIFAR-10-C style corruptions are in :mod:`visiondl_keras.evaluation.corruptions`.

Example:
    >>> noise = noise_sweep(model, x_test[:500], y_test[:500])  # doctest: +SKIP
    >>> report = attack_sweep(model, x_test[:500], y_test[:500], epsilons=(0, 2, 8))  # doctest: +SKIP
    >>> report["pgd_accuracy"], report["all_checks_passed"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time

import numpy as np
from tqdm.auto import tqdm

from visiondl_keras.errors import ConfigError
from visiondl_keras.evaluation.gradients import check_labelled_images, input_gradients, predict_logits
from visiondl_keras.evaluation.metrics import accuracy

__all__ = [
    "DEFAULT_EPSILONS",
    "DEFAULT_SIGMAS",
    "attack_self_checks",
    "attack_sweep",
    "fgsm_attack",
    "fgsm_perturb",
    "noise_sweep",
    "pgd_attack",
]

DEFAULT_SIGMAS = (0.0, 2.0, 4.0, 8.0, 16.0)
DEFAULT_EPSILONS = (0.0, 1.0, 2.0, 4.0, 8.0)

# --------------------------------------------------------------------------------------------
# Gaussian noise
# --------------------------------------------------------------------------------------------


def noise_sweep(model, images, labels, sigmas=DEFAULT_SIGMAS, seed: int = 0, batch_size: int = 512) -> dict:
    """Accuracy under additive Gaussian pixel noise.

    Args:
        model: a ``keras.Model`` on 0-255 RGB.
        images: (N, H, W, 3) images (uint8 or 0-255 float).
        labels: (N,) int labels.
        sigmas: noise standard deviations in 0-255 pixel units (``8.0`` = 8/255).
        seed: seed of the noise.
        batch_size: images per forward pass.

    Returns:
        ``{"sigmas": [...], "accuracy": [...]}``; noisy images are clipped to [0, 255] and kept
        as floats (not re-quantised).
    """
    x, y = check_labelled_images(images, labels)
    if any(s < 0 for s in sigmas):
        raise ConfigError(f"sigmas must be non-negative, got {list(sigmas)}.")
    x = x.astype(np.float32)
    accs = []
    for i, s in enumerate(sigmas):
        rng = np.random.default_rng([seed, i])
        noisy = x if s == 0 else np.clip(x + rng.normal(0.0, s, size=x.shape).astype(np.float32), 0, 255)
        accs.append(accuracy(predict_logits(model, noisy, batch_size), y))
    return {"sigmas": [float(s) for s in sigmas], "accuracy": accs}


# --------------------------------------------------------------------------------------------
# FGSM and PGD
# --------------------------------------------------------------------------------------------


def fgsm_perturb(images, gradients, epsilon: float) -> np.ndarray:
    """One FGSM step: move every pixel by ``epsilon`` in the direction of the gradient's sign.

    Pure numpy, pixel space: ``clip(images + epsilon * sign(gradients), 0, 255)``.

    Args:
        images: (N, H, W, C) images on the 0-255 scale (uint8 or float).
        gradients: gradients of the loss with respect to ``images`` (same shape).
        epsilon: the L-infinity budget in 0-255 pixel units, e.g. ``8.0`` for the usual
            "8/255" (8/255 of the full range). Must be >= 0.

    Returns:
        float32 adversarial images in [0, 255].

    Example:
        >>> fgsm_perturb(np.array([[[[10.0, 250.0, 0.0]]]]), np.array([[[[1.0, 1.0, -1.0]]]]), 8.0).ravel().tolist()
        [18.0, 255.0, 0.0]
    """
    x = np.asarray(images, dtype=np.float32)
    g = np.asarray(gradients)
    if g.shape != x.shape:
        raise ConfigError(f"gradients must have the images' shape {x.shape}, got {g.shape}.")
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be a non-negative number of 0-255 pixel units, got {epsilon}.")
    return np.clip(x + np.float32(epsilon) * np.sign(g).astype(np.float32), 0.0, 255.0)


def fgsm_attack(model, images, labels, epsilon: float, batch_size: int = 256) -> np.ndarray:
    """Fast Gradient Sign Method (Goodfellow et al., 2015), untargeted, L-infinity.

    Args:
        model: a ``keras.Model`` on 0-255 RGB returning logits.
        images: (N, H, W, 3) images.
        labels: (N,) true labels.
        epsilon: budget in 0-255 pixel units (``8.0`` = 8/255).
        batch_size: images per backward pass.

    Returns:
        float32 adversarial images in [0, 255].
    """
    x, y = check_labelled_images(images, labels)
    return fgsm_perturb(x, input_gradients(model, x, y, batch_size=batch_size), epsilon)


def pgd_attack(
    model,
    images,
    labels,
    epsilon: float,
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = False,
    early_stop: bool = True,
    seed: int = 0,
    batch_size: int = 256,
    initial_gradients=None,
) -> np.ndarray:
    """Projected Gradient Descent (Madry et al., 2018), untargeted, L-infinity.

    Each step moves by ``step_size`` along the sign of the loss gradient, then projects onto the
    ``epsilon`` ball around the original image and onto [0, 255].

    Args:
        model: a ``keras.Model`` on 0-255 RGB returning logits.
        images: (N, H, W, 3) images.
        labels: (N,) true labels.
        epsilon: budget in 0-255 pixel units (``8.0`` = 8/255).
        steps: gradient steps (PGD-10 by default).
        step_size: per-step move in pixel units; default ``2.5 * epsilon / steps``.
        random_start: start from a uniform random point of the ball (else from the image).
        early_stop: stop attacking an image as soon as it is misclassified and keep that
            adversarial image. This never weakens the attack (plain PGD returns the last
            iterate, which may be classified correctly again) and saves most of the work.
        seed: seed of the random start.
        batch_size: images per backward pass.
        initial_gradients: optional gradients at ``images`` (e.g. shared with FGSM) to save
            the first backward pass when ``random_start`` is False.

    Returns:
        float32 adversarial images in [0, 255].
    """
    x, y = check_labelled_images(images, labels)
    if not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}.")
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ConfigError(f"epsilon must be a non-negative number of 0-255 pixel units, got {epsilon}.")
    x = x.astype(np.float32)
    alpha = np.float32(2.5 * epsilon / steps if step_size is None else step_size)
    eps = np.float32(epsilon)
    lo, hi = np.clip(x - eps, 0, 255), np.clip(x + eps, 0, 255)
    adv = x.copy()
    if random_start and epsilon > 0:
        rng = np.random.default_rng(seed)
        adv = np.clip(x + rng.uniform(-eps, eps, size=x.shape).astype(np.float32), lo, hi)
    if epsilon == 0 or len(x) == 0:
        return adv
    active = np.arange(len(x))
    for step in range(steps):
        if step == 0 and initial_gradients is not None and not random_start:
            g = np.asarray(initial_gradients, dtype=np.float32)
            out = None
        else:
            g, out = input_gradients(model, adv[active], y[active], batch_size=batch_size, return_outputs=True)
        if early_stop and out is not None:
            still = out.argmax(axis=1) == y[active]
            g, active = g[still], active[still]
            if len(active) == 0:
                break
        adv[active] = np.clip(adv[active] + alpha * np.sign(g), lo[active], hi[active])
    return adv


def attack_self_checks(result: dict, n: int) -> list[dict]:
    """Checks that catch a broken attack, on the output of :func:`attack_sweep`.

    * epsilon 0 gives the clean accuracy (FGSM and PGD, within one image);
    * PGD accuracy <= FGSM accuracy at every epsilon (within sampling noise);
    * accuracy does not increase with epsilon (within sampling noise).

    "Sampling noise" is two binomial standard errors of the accuracy on ``n`` images plus
    one image.

    Returns:
        A list of ``{"check", "passed", "detail"}`` dicts.
    """
    eps = list(result["epsilons"])
    clean = result["clean_accuracy"]
    fgsm, pgd = result["fgsm_accuracy"], result["pgd_accuracy"]

    def tol(p):
        return 2.0 * math.sqrt(max(p * (1 - p), 0.0) / max(n, 1)) + 1.0 / max(n, 1)

    checks = []
    if 0.0 in eps:
        i = eps.index(0.0)
        ok = abs(fgsm[i] - clean) <= 1.0 / max(n, 1) + 1e-9 and abs(pgd[i] - clean) <= 1.0 / max(n, 1) + 1e-9
        checks.append(
            {"check": "epsilon 0 gives the clean accuracy", "passed": bool(ok),
             "detail": f"clean {clean:.4f}, FGSM {fgsm[i]:.4f}, PGD {pgd[i]:.4f}"}
        )
    worse = [(e, f, p) for e, f, p in zip(eps, fgsm, pgd) if p > f + tol(f)]
    checks.append(
        {"check": "PGD accuracy <= FGSM accuracy", "passed": not worse,
         "detail": "holds at every epsilon" if not worse else f"violated at (eps, FGSM, PGD) {worse}"}
    )
    order = np.argsort(eps)
    for name, accs in (("FGSM", fgsm), ("PGD", pgd)):
        a = [accs[i] for i in order]
        rises = [(eps[order[k]], a[k], a[k + 1]) for k in range(len(a) - 1) if a[k + 1] > a[k] + tol(a[k])]
        detail = "holds" if not rises else f"rises after (eps, acc, next acc) {rises}"
        if name == "PGD" and result.get("pgd_nested"):
            detail += " (by construction: nested budgets; FGSM's check is the independent one)"
        checks.append({"check": f"{name} accuracy non-increasing in epsilon", "passed": not rises, "detail": detail})
    return checks


def attack_sweep(
    model,
    images,
    labels,
    epsilons=DEFAULT_EPSILONS,
    steps: int = 10,
    batch_size: int = 256,
    progress: bool = False,
    nested: bool = True,
) -> dict:
    """FGSM and PGD accuracy over a range of budgets, with self-checks and timings.

    The loss gradient at the clean images is computed once and shared by FGSM (all epsilons)
    and the first PGD step.

    Args:
        model: a ``keras.Model`` on 0-255 RGB returning logits.
        images: (N, H, W, 3) images.
        labels: (N,) true labels.
        epsilons: budgets in 0-255 pixel units (``8.0`` = 8/255).
        steps: PGD steps.
        batch_size: images per pass.
        progress: show a tqdm bar.
        nested: budgets are attacked in increasing order and PGD at each budget attacks only
            the images that withstood PGD at the next smaller one: an adversarial image found
            inside the smaller ball lies inside the larger one too, so those images count as
            broken. The reported PGD accuracy is then that of the (stronger) "PGD at any budget
            up to epsilon" attack, and most of the work at large budgets is saved. With
            ``nested=False`` every budget attacks all correctly classified images afresh (and
            the PGD monotonicity self-check is informative rather than true by construction).
            FGSM is always run independently at every budget.

    Returns:
        A dict with ``epsilons``, ``clean_accuracy``, ``fgsm_accuracy``, ``pgd_accuracy``,
        ``pgd_steps``, ``pgd_nested``, ``pgd_images_attacked`` (per budget), ``checks`` (see
        :func:`attack_self_checks`), ``all_checks_passed``, ``num_images`` and ``seconds``.
    """
    x, y = check_labelled_images(images, labels)
    x = x.astype(np.float32)
    eps_list = [float(e) for e in epsilons]
    t0 = time.perf_counter()
    g, logits = input_gradients(model, x, y, batch_size=batch_size, return_outputs=True)
    clean = accuracy(logits, y)
    correct = logits.argmax(axis=1) == y
    fgsm_acc, pgd_acc, attacked = [None] * len(eps_list), [None] * len(eps_list), [0] * len(eps_list)
    robust = correct.copy()  # images that withstood PGD at every smaller budget (nested mode)
    for i in tqdm(sorted(range(len(eps_list)), key=lambda k: eps_list[k]), desc="FGSM/PGD", unit="eps",
                  disable=not progress):
        e = eps_list[i]
        fgsm_acc[i] = clean if e == 0 else accuracy(predict_logits(model, fgsm_perturb(x, g, e), batch_size), y)
        if e == 0:
            pgd_acc[i] = clean
            continue
        # Images the model already gets wrong need no attack; PGD starts from the others.
        todo = np.flatnonzero(robust if nested else correct)
        attacked[i] = int(len(todo))
        adv = pgd_attack(model, x[todo], y[todo], e, steps=steps, batch_size=batch_size, initial_gradients=g[todo])
        survived = predict_logits(model, adv, batch_size).argmax(axis=1) == y[todo]
        pgd_acc[i] = float(np.sum(survived) / len(y))
        if nested:
            robust = np.zeros_like(correct)
            robust[todo[survived]] = True
    result = {
        "epsilons": eps_list,
        "epsilon_units": "0-255 pixel units (8.0 = 8/255)",
        "clean_accuracy": clean,
        "fgsm_accuracy": fgsm_acc,
        "pgd_accuracy": pgd_acc,
        "pgd_steps": int(steps),
        "pgd_step_size": "2.5 * epsilon / steps",
        "pgd_nested": bool(nested),
        "pgd_images_attacked": attacked,
        "num_images": int(len(y)),
    }
    result["checks"] = attack_self_checks(result, len(y))
    result["all_checks_passed"] = all(c["passed"] for c in result["checks"])
    result["seconds"] = time.perf_counter() - t0
    return result
