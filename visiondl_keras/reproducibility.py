"""Seeds, determinism and the environment record that every run stores."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import random
import sys

import numpy as np


def set_seed(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and the Keras backend; optionally make ops deterministic.

    Args:
        seed: the seed (a non-negative int).
        deterministic: also ask the backend for deterministic kernels (TensorFlow:
            ``enable_op_determinism``; PyTorch: ``use_deterministic_algorithms``). Slower,
            but two runs with the same seed give identical results on the same machine.

    Example:
        >>> set_seed(0, deterministic=True)
    """
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        from visiondl_keras.errors import ConfigError

        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    import keras

    keras.utils.set_random_seed(seed)
    backend = keras.backend.backend()
    if deterministic:
        os.environ["TF_DETERMINISTIC_OPS"] = "1"
        os.environ["TF_CUDNN_DETERMINISTIC"] = "1"
        if backend == "tensorflow":
            import tensorflow as tf

            tf.config.experimental.enable_op_determinism()
        elif backend == "torch":
            import torch

            torch.use_deterministic_algorithms(True, warn_only=True)


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _devices(backend: str) -> list[str]:
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            return [f"{d.device_type}:{d.name}" for d in tf.config.list_physical_devices()]
        if backend == "jax":
            import jax

            return [str(d) for d in jax.devices()]
        if backend == "torch":
            import torch

            devs = ["cpu"]
            if torch.cuda.is_available():
                devs += [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())]
            return devs
    except Exception as exc:  # device listing must never break a run
        return [f"unknown ({type(exc).__name__})"]
    return []


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_info() -> dict:
    """The CPU model and whether it has bfloat16 instructions (``avx512_bf16`` or AMX), from
    ``/proc/cpuinfo`` on Linux (``platform.processor()`` elsewhere).

    Example:
        >>> sorted(cpu_info())
        ['bf16_flags', 'has_bf16', 'model']
    """
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model in ("", platform.processor(), platform.machine()):
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    bf16 = sorted(f for f in BF16_CPU_FLAGS if f in flags)
    return {"model": model, "bf16_flags": bf16, "has_bf16": bool(bf16)}


def has_gpu() -> bool:
    """True when the active Keras backend sees a GPU."""
    import keras

    return any("GPU" in d.upper() or "CUDA" in d.upper() for d in _devices(keras.backend.backend()))


def environment_info() -> dict:
    """Versions, backend, devices and CPU count, for ``environment.json`` of a run.

    Returns:
        A JSON-serialisable dict.

    Example:
        >>> info = environment_info()
        >>> sorted(info)[:3]
        ['backend', 'cpu_count', 'devices']
    """
    import keras

    backend = keras.backend.backend()
    packages = {
        name: _version(dist)
        for name, dist in [
            ("visiondl_keras", "visiondl-keras"),
            ("keras", "keras"),
            ("tensorflow", "tensorflow"),
            ("tensorflow_cpu", "tensorflow-cpu"),
            ("jax", "jax"),
            ("torch", "torch"),
            ("numpy", "numpy"),
            ("scipy", "scipy"),
            ("scikit_learn", "scikit-learn"),
            ("pillow", "pillow"),
            ("matplotlib", "matplotlib"),
        ]
    }
    return {
        "backend": backend,
        "cpu_count": os.cpu_count(),
        "cpu": cpu_info(),
        "devices": _devices(backend),
        "floatx": keras.backend.floatx(),
        "packages": {k: v for k, v in packages.items() if v is not None},
        "platform": platform.platform(),
        "python": sys.version.split()[0],
    }
