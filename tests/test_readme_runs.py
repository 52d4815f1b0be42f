"""Every command the README shows runs, in the README's order, in a fresh folder, on real data.

Long commands get quick settings (extra flags appended, nothing removed): a training run becomes
``--quick``, diagnostics and exports use small subsets, and the placeholder image ``img.png`` is one
of the samples the README's ``samples`` command writes. Needs CIFAR-10 (``VISIONDL_DATA``) and, for the
transfer commands, the ImageNet weights in Keras' cache.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.integration]

QUICK = {
    "train": ["--quick"],
    "lr-find": [],
    "ablate-augment": ["--seeds", "0", "--policies", "none", "baseline"],
    "transfer-compare": ["--strategies", "frozen"],
    "transfer-train": ["--limit", "300", "--test-limit", "200", "--val-size", "200", "--epochs", "1",
                       "--warmup-epochs", "1", "--input-size", "32"],
    "diagnose": ["--limit", "200", "--noise-limit", "100", "--attack-limit", "40", "--corruption-limit", "40",
                 "--corruptions", "gaussian_noise,contrast", "--severities", "1", "--pgd-steps", "2",
                 "--gallery-size", "8", "--review-size", "8"],
    "export": ["--representative", "100"],
}


def readme_commands() -> list[str]:
    """The README's commands, as ``tests/test_readme.py`` extracts them."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_test_readme", Path(__file__).with_name("test_readme.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.readme_commands()


def quick_argv(command: str) -> list[str]:
    """The README command with its optional ``[...]`` parts dropped and quick settings appended."""
    argv = shlex.split(re.sub(r"\[[^\]]*\]", "", command))
    argv = ["samples/cat.png" if a == "img.png" else a for a in argv]
    sub = argv[3] if argv[2] == "visiondl_keras" and len(argv) > 3 else None
    extra = [a for a in QUICK.get(sub, []) if not (a.startswith("--") and a in argv)]
    if sub == "train" and "--quick" in argv:
        extra = []
    return [sys.executable, *argv[1:], *extra, "--quiet"] if sub not in (None, "samples") else [sys.executable, *argv[1:]]


def _serve_once(argv: list[str], cwd: Path, env: dict, timeout: float = 180) -> str | None:
    """Start a server command on a free port, wait for its page to answer HTTP 200, stop it; a problem or None."""
    import socket
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen([*argv, "--port", str(port)], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    try:
        end = time.time() + timeout
        while time.time() < end:
            if proc.poll() is not None:
                return f"exited with {proc.returncode} before serving: {proc.stderr.read()[-800:]}"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as r:
                    if r.status == 200:
                        return None
            except OSError:
                time.sleep(1)
        return f"no page on port {port} within {timeout:.0f} s"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_readme_commands_run_as_written(tmp_path):
    if not os.environ.get("VISIONDL_DATA"):
        pytest.skip("VISIONDL_DATA is not set (the README's commands need CIFAR-10)")
    commands = readme_commands()
    order = sorted(commands, key=lambda c: " samples" not in c)  # samples first: infer reads them
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    failures = []
    for command in order:
        argv = quick_argv(command)
        if "dashboard" in argv:  # a server: it must come up and answer, then it is stopped
            problem = _serve_once(argv, tmp_path, env)
            if problem:
                failures.append(f"{command}\n  -> {problem}")
            continue
        r = subprocess.run(argv, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0:
            failures.append(f"{command}\n  -> exit {r.returncode}: {(r.stderr or r.stdout).strip()[-800:]}")
    assert not failures, "\n".join(failures)
    assert (tmp_path / "runs" / "ref" / "model_card.md").is_file()
    assert (tmp_path / "runs" / "ref" / "export").is_dir()
