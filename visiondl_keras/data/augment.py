"""Augmentation policies: the CIFAR baseline and RandAugment, MixUp, CutMix.

All functions take and return numpy arrays (uint8 or float32 NHWC images on the 0-255 scale,
labels as ints or one-hot/soft float32 rows) and draw from an explicit ``numpy.random.Generator``,
so a policy is deterministic given its generator and works with every Keras backend.

Baseline: reflect-pad 4 pixels and crop a random 32x32 window *per image*, then flip half of the
images horizontally. (``keras.layers.RandomCrop`` crops every image of a batch at the same
offset, which is not the CIFAR recipe; see the augmentation lesson.) Normalisation with the
training split's per-channel mean and std happens inside the models (their first layer), so
checkpoints take raw images; :func:`normalize` is the same computation for inspection.

Named policies compose with ``+``: ``baseline``, ``randaugment``, ``mixup``, ``cutmix``,
``randaugment+mixup``, ``randaugment+cutmix``, ``none``. Every policy except ``none`` includes the
baseline crop and flip; RandAugment runs before MixUp/CutMix.

The fast recipe (lesson 3) has its own pipeline: ``altflip`` (alternating flip), ``altflip+translate``
(its default: + reflect-padded 2-pixel translation) or ``flip+translate`` (a fresh coin per epoch), optionally
followed by ``randaugment``, ``mixup`` or ``cutmix`` (e.g. ``altflip+translate+cutmix``): see
:func:`parse_fast_policy`, :class:`FastPolicy` and :func:`fast_policy_epoch`.
"""

from __future__ import annotations

import numpy as np

from visiondl_keras.errors import ConfigError

BATCH_OPS = ("mixup", "cutmix")
IMAGE_OPS = ("randaugment",)
POLICIES = ("none", "baseline", "randaugment", "mixup", "cutmix", "randaugment+mixup", "randaugment+cutmix")


def _rng(rng) -> np.random.Generator:
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    return rng


def random_crop(images: np.ndarray, padding: int = 4, rng=None, mode: str = "reflect") -> np.ndarray:
    """Pad each image by ``padding`` pixels and crop a random window of the original size, per image.

    Args:
        images: (N, H, W, C) array.
        padding: pixels added on every side (0 returns a copy).
        rng: a ``numpy.random.Generator``, a seed, or None.
        mode: ``numpy.pad`` mode (``"reflect"`` as in the standard recipe, or ``"constant"`` for zeros).

    Returns:
        An array of the input's shape and dtype; image i is ``padded[i, dy:dy+H, dx:dx+W]`` with
        ``dy, dx`` drawn uniformly from ``0..2*padding`` independently for every image.

    Example:
        >>> x = np.arange(2 * 4 * 4 * 1).reshape(2, 4, 4, 1)
        >>> random_crop(x, padding=0).shape
        (2, 4, 4, 1)
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ConfigError(f"images must be (N, H, W, C), got shape {images.shape}.")
    if padding < 0:
        raise ConfigError(f"padding must be >= 0, got {padding}.")
    if padding == 0:
        return images.copy()
    rng = _rng(rng)
    n, h, w, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)), mode=mode)
    dy = rng.integers(0, 2 * padding + 1, size=n)
    dx = rng.integers(0, 2 * padding + 1, size=n)
    rows = dy[:, None] + np.arange(h)[None, :]  # (N, H)
    cols = dx[:, None] + np.arange(w)[None, :]  # (N, W)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def random_flip(images: np.ndarray, rng=None, p: float = 0.5) -> np.ndarray:
    """Flip each image left-right with probability ``p`` (drawn per image).

    Example:
        >>> x = np.arange(4).reshape(1, 1, 4, 1)
        >>> random_flip(x, p=1.0)[0, 0, :, 0].tolist()
        [3, 2, 1, 0]
    """
    images = np.asarray(images)
    flip = _rng(rng).random(len(images)) < p
    out = images.copy()
    out[flip] = out[flip, :, ::-1]
    return out


def normalize(images: np.ndarray, mean, std) -> np.ndarray:
    """Per-channel standardisation ``(x - mean) / std`` on the 0-255 scale, as float32."""
    return (np.asarray(images, dtype=np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Integer labels to float32 one-hot rows; float rows (already soft) pass through."""
    labels = np.asarray(labels)
    if labels.ndim == 2:
        return labels.astype(np.float32)
    return np.eye(num_classes, dtype=np.float32)[labels]


def _soft_labels(labels, alpha: float, op: str) -> np.ndarray:
    """Validate the arguments shared by MixUp and CutMix; return the labels as float32 rows."""
    if alpha <= 0:
        raise ConfigError(f"alpha must be > 0, got {alpha}.")
    labels = np.asarray(labels, dtype=np.float32)
    if labels.ndim != 2:
        raise ConfigError(f"{op} needs one-hot or soft labels of shape (N, num_classes); use one_hot(labels, k).")
    return labels


def mixup(images: np.ndarray, labels: np.ndarray, alpha: float = 0.2, rng=None):
    """MixUp (Zhang et al. 2018): blend each image and label with a partner from the same batch.

    One ``lam ~ Beta(alpha, alpha)`` is drawn per batch and the partners are a random permutation:
    ``x = lam * x + (1 - lam) * x[perm]``, and the same for the one-hot labels.

    Args:
        images: (N, H, W, C) images (0-255).
        labels: (N, K) one-hot or soft labels (float).
        alpha: Beta concentration (> 0).
        rng: generator or seed.

    Returns:
        ``(images float32, labels float32)``; each label row still sums to 1.

    Example:
        >>> x = np.zeros((4, 2, 2, 3)); y = np.eye(4, dtype=np.float32)
        >>> xm, ym = mixup(x, y, rng=0)
        >>> np.allclose(ym.sum(axis=1), 1.0)
        True
    """
    labels = _soft_labels(labels, alpha, "mixup")
    rng = _rng(rng)
    images = np.asarray(images, dtype=np.float32)
    lam = np.float32(rng.beta(alpha, alpha))
    perm = rng.permutation(len(images))
    return lam * images + (1 - lam) * images[perm], lam * labels + (1 - lam) * labels[perm]


def cutmix_box(height: int, width: int, lam: float, rng=None) -> tuple[int, int, int, int]:
    """A box (y0, y1, x0, x1) covering about ``1 - lam`` of the image, centred uniformly, clipped."""
    rng = _rng(rng)
    cut = np.sqrt(1.0 - lam)
    ch, cw = int(round(height * cut)), int(round(width * cut))
    cy, cx = int(rng.integers(0, height)), int(rng.integers(0, width))
    y0, y1 = np.clip(cy - ch // 2, 0, height), np.clip(cy - ch // 2 + ch, 0, height)
    x0, x1 = np.clip(cx - cw // 2, 0, width), np.clip(cx - cw // 2 + cw, 0, width)
    return int(y0), int(y1), int(x0), int(x1)


def cutmix(images: np.ndarray, labels: np.ndarray, alpha: float = 1.0, rng=None):
    """CutMix (Yun et al. 2019): paste a box from a partner image; labels mixed by the pasted area.

    One ``lam ~ Beta(alpha, alpha)`` and one box per batch; the label weight of the partner is the
    *actual* pasted area fraction after clipping the box to the image.

    Returns:
        ``(images float32, labels float32)``.
    """
    labels = _soft_labels(labels, alpha, "cutmix")
    rng = _rng(rng)
    images = np.array(images, dtype=np.float32)
    n, h, w, _ = images.shape
    lam = float(rng.beta(alpha, alpha))
    perm = rng.permutation(n)
    y0, y1, x0, x1 = cutmix_box(h, w, lam, rng)
    images[:, y0:y1, x0:x1] = images[perm, y0:y1, x0:x1]
    area = (y1 - y0) * (x1 - x0) / (h * w)
    return images, np.float32(1 - area) * labels + np.float32(area) * labels[perm]


class RandAugment:
    """RandAugment (Cubuk et al. 2020) through Keras core's ``keras.layers.RandAugment``.

    Keras' layer draws its ``num_ops`` operations once per call, for the whole batch. To give
    images different operations (as in the paper) the batch is processed in chunks of
    ``chunk_size`` images, each with its own draw; the layer's seed state is set from the caller's
    generator before every chunk, so the result is a pure function of that generator (runs stay
    reproducible and resumable).

    Args:
        num_ops: operations per image.
        factor: magnitude in [0, 1].
        chunk_size: images that share one draw of operations.
    """

    def __init__(self, num_ops: int = 2, factor: float = 0.5, chunk_size: int = 16):
        import keras

        self.layer = keras.layers.RandAugment(value_range=(0, 255), num_ops=num_ops, factor=factor, seed=0)
        self.chunk_size = chunk_size
        self._apply = self._eager
        if keras.backend.backend() == "tensorflow":
            # one traced graph instead of dozens of eager op dispatches per chunk: about 10x faster on a
            # CPU, same random draws (outputs agree with the eager call to float rounding)
            import tensorflow as tf

            self._apply = tf.function(self._eager, reduce_retracing=True)

    def _eager(self, chunk, seed):
        self.layer.generator.state.assign(seed)
        return self.layer(chunk, training=True)

    def __call__(self, images: np.ndarray, rng=None) -> np.ndarray:
        import keras

        rng = _rng(rng)
        images = np.asarray(images, dtype=np.float32)
        out = np.empty_like(images)
        for i in range(0, len(images), self.chunk_size):
            seed = np.array([rng.integers(0, 2**31 - 1), 0], dtype="uint32")
            chunk = self._apply(images[i : i + self.chunk_size], seed)
            out[i : i + self.chunk_size] = np.clip(keras.ops.convert_to_numpy(chunk), 0, 255)
        return out


class Policy:
    """A named, composable augmentation policy applied to numpy batches.

    Args:
        name: e.g. ``"baseline"``, ``"randaugment+cutmix"`` (see ``POLICIES``).
        num_classes: for the one-hot labels.
        padding: crop padding of the baseline.
        mixup_alpha, cutmix_alpha: Beta parameters.
        randaugment_ops, randaugment_factor: RandAugment settings.
        seed: unused (kept for compatibility); every random draw comes from the generator given per call.

    Calling ``policy(images, labels, rng)`` returns float32 images (0-255) and float32 soft labels.

    Example:
        >>> p = Policy("baseline")
        >>> x, y = p(np.zeros((8, 32, 32, 3), np.uint8), np.arange(8) % 10, np.random.default_rng(0))
        >>> x.shape, y.shape
        ((8, 32, 32, 3), (8, 10))
    """

    def __init__(self, name: str = "baseline", num_classes: int = 10, padding: int = 4, mixup_alpha: float = 0.2,
                 cutmix_alpha: float = 1.0, randaugment_ops: int = 2, randaugment_factor: float = 0.5,
                 seed: int | None = None):
        parts = [p.strip() for p in name.lower().split("+") if p.strip()]
        known = {"none", "baseline", *IMAGE_OPS, *BATCH_OPS}
        bad = [p for p in parts if p not in known]
        if not parts or bad:
            raise ConfigError(f"unknown augmentation policy {name!r}; use parts of {sorted(known)} joined by '+'.")
        if "mixup" in parts and "cutmix" in parts:
            raise ConfigError("choose mixup or cutmix, not both, in one policy.")
        self.name = "+".join(parts)
        self.parts = parts
        self.num_classes = num_classes
        self.padding = padding
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.geometric = parts != ["none"]
        self.randaugment = RandAugment(randaugment_ops, randaugment_factor) if "randaugment" in parts else None

    def __call__(self, images, labels, rng):
        rng = _rng(rng)
        x = np.asarray(images)
        if self.geometric:
            x = random_flip(random_crop(x, self.padding, rng), rng)
        x = x.astype(np.float32)
        if self.randaugment is not None:
            x = self.randaugment(x, rng)
        y = one_hot(labels, self.num_classes)
        if "mixup" in self.parts:
            x, y = mixup(x, y, self.mixup_alpha, rng)
        elif "cutmix" in self.parts:
            x, y = cutmix(x, y, self.cutmix_alpha, rng)
        return x, y

    def __repr__(self):
        return f"Policy({self.name!r})"


def get_policy(name: str, **kwargs) -> Policy | FastPolicy:
    """The :class:`Policy` of that name (see ``POLICIES``), or the :class:`FastPolicy` for a fast-recipe name."""
    if is_fast_policy(name):
        return FastPolicy(name, **{k: v for k, v in kwargs.items() if k in ("num_classes", "mixup_alpha",
                                                                          "cutmix_alpha")})
    return Policy(name, **kwargs)


def augmented_epoch(x: np.ndarray, y: np.ndarray, policy: Policy, seed: int, epoch: int, batch_size: int):
    """One epoch of shuffled, augmented data as whole arrays, a pure function of (seed, epoch).

    The order is ``default_rng([seed, epoch]).permutation``; batch ``b`` is augmented with
    ``default_rng([seed, epoch, b])``, so batch-level ops (MixUp, CutMix) mix within the batches
    that training will see (train without further shuffling). Resuming a run at epoch ``e``
    reproduces exactly the data an uninterrupted run sees.

    Returns:
        ``(images float32 (N, 32, 32, 3), soft labels float32 (N, K))``.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(x))
    xs = np.empty((len(x), *x.shape[1:]), dtype=np.float32)
    ys = np.empty((len(x), policy.num_classes), dtype=np.float32)
    for b, start in enumerate(range(0, len(x), batch_size)):
        idx = order[start : start + batch_size]
        xs[start : start + len(idx)], ys[start : start + len(idx)] = policy(
            x[idx], y[idx], np.random.default_rng([seed, epoch, b])
        )
    return xs, ys


ALTERNATING_POLICIES = ("altflip", "altflip+translate", "flip+translate")
FAST_EXTRAS = ("randaugment", "mixup", "cutmix")


def parse_fast_policy(name: str) -> tuple[str, tuple[str, ...]] | None:
    """Split a fast-recipe policy name into its flip/translate base and the operations added on top.

    Fast-recipe names start with one of ``ALTERNATING_POLICIES`` and may add ``randaugment``,
    ``mixup`` or ``cutmix``, e.g. ``"altflip+translate+cutmix"``. Returns ``(base, extras)``, or
    ``None`` for a name that is not a fast-recipe policy (``"baseline"``, ``"none"``, ...).

    Raises:
        ConfigError: a fast-recipe name with an unknown part, a repeated part, or both MixUp and CutMix.

    Example:
        >>> parse_fast_policy("altflip+translate+mixup")
        ('altflip+translate', ('mixup',))
        >>> parse_fast_policy("baseline") is None
        True
    """
    parts = [p.strip() for p in name.lower().split("+") if p.strip()]
    n_base = 2 if parts[1:2] == ["translate"] else 1
    base = "+".join(parts[:n_base])
    if base not in ALTERNATING_POLICIES:
        return None
    extras = tuple(parts[n_base:])
    bad = [p for p in extras if p not in FAST_EXTRAS]
    if bad or len(set(extras)) != len(extras):
        raise ConfigError(f"unknown or repeated parts {bad or list(extras)} in the fast-recipe policy {name!r}; "
                          f"after {base!r} add any of {list(FAST_EXTRAS)} once each, joined by '+'.")
    if "mixup" in extras and "cutmix" in extras:
        raise ConfigError("choose mixup or cutmix, not both, in one policy.")
    return base, extras


def is_fast_policy(name: str) -> bool:
    """Whether ``name`` is a policy of the fast recipe's pipeline (see :func:`parse_fast_policy`)."""
    return parse_fast_policy(name) is not None


def alternating_flip_epoch(x: np.ndarray, y: np.ndarray, seed: int, epoch: int, translate: int = 2,
                           num_classes: int = 10, alternate: bool = True):
    """One epoch of the fast recipe's augmentation, a pure function of (seed, epoch).

    *Alternating flip*: each image gets one random left-right flip decision, drawn once from
    ``seed``; in even epochs (0, 2, ...) that decision is applied, in odd epochs its opposite.
    Every image is thus seen both ways in any two consecutive epochs, which spreads the flips
    more evenly than a fresh coin per epoch. *Translate*: reflect-pad ``translate`` pixels and
    crop per image (``random_crop``), fresh offsets every epoch. The order is
    ``default_rng([seed, epoch]).permutation`` as in :func:`augmented_epoch`. With
    ``alternate=False`` each epoch draws fresh flips instead (policy ``flip+translate``, the ablation).

    Returns:
        ``(images float32 (N, H, W, C), one-hot labels float32 (N, K))`` in training order.
    """
    x = np.asarray(x)
    if alternate:
        flip = np.random.default_rng([seed, 2**31 - 1]).random(len(x)) < 0.5
        if epoch % 2 == 1:
            flip = ~flip
    else:
        flip = np.random.default_rng([seed, epoch, 2**31 - 1]).random(len(x)) < 0.5
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(x))
    xs = x[order]
    f = flip[order]
    xs[f] = xs[f, :, ::-1]
    if translate:
        xs = random_crop(xs, translate, rng, mode="reflect")
    return xs.astype(np.float32), one_hot(np.asarray(y)[order], num_classes)


class FastPolicy:
    """A fast-recipe policy (see :func:`parse_fast_policy`) with the interface of :class:`Policy`.

    Training uses :func:`fast_policy_epoch`, which needs the whole epoch for the alternating flip.
    Calling the policy on one batch (pictures, tests) flips each image with probability 1/2 (what
    the alternating flip does to an image in any single epoch), translates, then applies the extras;
    :meth:`apply_extras` is the part both share.

    Args:
        name: e.g. ``"altflip+translate+cutmix"``.
    """

    def __init__(self, name: str, num_classes: int = 10, mixup_alpha: float = 0.2, cutmix_alpha: float = 1.0):
        parsed = parse_fast_policy(name)
        if parsed is None:
            raise ConfigError(f"{name!r} is not a fast-recipe policy; start with one of {list(ALTERNATING_POLICIES)}.")
        self.base, self.extras = parsed
        self.name = "+".join((self.base, *self.extras))
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.translate = 2 if self.base.endswith("translate") else 0
        self.randaugment = RandAugment() if "randaugment" in self.extras else None

    def apply_extras(self, images: np.ndarray, labels: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        """RandAugment, then MixUp or CutMix, on one batch (float32 images, soft labels)."""
        if self.randaugment is not None:
            images = self.randaugment(images, rng)
        if "mixup" in self.extras:
            images, labels = mixup(images, labels, self.mixup_alpha, rng)
        elif "cutmix" in self.extras:
            images, labels = cutmix(images, labels, self.cutmix_alpha, rng)
        return images, labels

    def __call__(self, images, labels, rng):
        rng = _rng(rng)
        x = random_flip(np.asarray(images), rng)
        if self.translate:
            x = random_crop(x, self.translate, rng, mode="reflect")
        return self.apply_extras(x.astype(np.float32), one_hot(labels, self.num_classes), rng)

    def __repr__(self):
        return f"FastPolicy({self.name!r})"


def fast_policy_epoch(x: np.ndarray, y: np.ndarray, policy: FastPolicy | str, seed: int, epoch: int,
                      batch_size: int, num_classes: int = 10):
    """One epoch of a fast-recipe policy (e.g. ``"altflip+translate+cutmix"``), a pure function of (seed, epoch).

    The flip/translate base is :func:`alternating_flip_epoch`; RandAugment, MixUp or CutMix then run
    on each training batch ``b`` (in training order, ``batch_size`` images) with the generator
    ``default_rng([seed, epoch, b])``, as in :func:`augmented_epoch`. Without extras the result is
    exactly that of :func:`alternating_flip_epoch`.

    Args:
        policy: a :class:`FastPolicy` or its name (pass the object to reuse its RandAugment graph across epochs).

    Returns:
        ``(images float32 (N, H, W, C), soft labels float32 (N, K))`` in training order.
    """
    policy = FastPolicy(policy, num_classes) if isinstance(policy, str) else policy
    xs, ys = alternating_flip_epoch(x, y, seed, epoch, policy.translate, num_classes,
                                    alternate=policy.base.startswith("altflip"))
    if policy.extras:
        for b, start in enumerate(range(0, len(xs), batch_size)):
            part = slice(start, start + batch_size)
            xs[part], ys[part] = policy.apply_extras(xs[part], ys[part], np.random.default_rng([seed, epoch, b]))
    return xs, ys
