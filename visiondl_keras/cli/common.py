"""Pieces every command shares: the one-line usage-error parser and parent parsers for common flags."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line on stderr and exit status 2.

    Every parser made with it (each command's too) has ``--verbose``: keep TensorFlow's and absl's
    start-up log messages, which :func:`quiet_backend_import` hides otherwise.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_argument("--verbose", action="store_true",
                          help="show TensorFlow/absl log messages (hidden by default)")

    def error(self, message):
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def int_list(text: str) -> list[int]:
    """``"1,2,4"`` -> ``[1, 2, 4]`` (an argparse ``type``)."""
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def float_list(text: str) -> list[float]:
    """``"0.5,1"`` -> ``[0.5, 1.0]`` (an argparse ``type``)."""
    try:
        return [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def name_list(text: str) -> list[str]:
    """``"a,b"`` -> ``["a", "b"]`` (an argparse ``type``)."""
    return [v.strip() for v in text.split(",") if v.strip()]


def data_parent() -> argparse.ArgumentParser:
    """``--data``: where CIFAR-10 comes from."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data", help="CIFAR-10 source: a folder, archive or image tree (default: $VISIONDL_DATA, "
                   "./data, the Keras cache, then a Keras download)")
    return p


def quiet_parent() -> argparse.ArgumentParser:
    """``--quiet``: no progress bars or per-epoch lines."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    return p


def checkpoint_parent() -> argparse.ArgumentParser:
    """``checkpoint`` (positional) and ``--run-dir`` for commands that read a trained model."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("checkpoint", help="a .keras checkpoint or a run directory (its best.keras)")
    p.add_argument("--run-dir", help="the training run's directory when it is not the checkpoint's folder "
                   "(e.g. artifacts/runs/NAME for artifacts/checkpoints/NAME.keras)")
    return p


def run_split_parent() -> argparse.ArgumentParser:
    """``--data``, ``--seed`` and ``--val-size`` for commands that reproduce a training run's split."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--data", help="CIFAR-10 source (default: the run's config.json, else $VISIONDL_DATA and the "
                   "usual places)")
    p.add_argument("--seed", type=int, help="the run's split seed (default: the run's config.json)")
    p.add_argument("--val-size", type=int, help="the run's validation size (default: the run's config.json)")
    return p


def batch_size_parent(default: int = 500) -> argparse.ArgumentParser:
    """``--batch-size``: images per forward pass."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--batch-size", type=int, default=default, help=f"images per forward pass (default {default})")
    return p


@contextlib.contextmanager
def _stderr_fd_silenced():
    """Point file descriptor 2 at /dev/null for the block (C++ libraries write there directly)."""
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def quiet_backend_import(verbose: bool = False) -> None:
    """Import Keras (and its backend) now, hiding the C++ start-up log lines unless ``verbose``.

    TensorFlow's libraries print oneDNN/absl/CPU-feature notices on stderr when they load, before
    Python's logging or ``TF_CPP_MIN_LOG_LEVEL`` can act on all of them; loading them here with
    stderr pointed at /dev/null keeps a command's output to what the command says. An import
    error is raised again after stderr is restored, so nothing that matters is lost.
    """
    if verbose:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
        import keras  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_fd_silenced():
        import keras  # noqa: F401
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
            tf.config.list_physical_devices()  # device discovery logs its notices now, not mid-command
