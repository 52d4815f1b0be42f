"""Run a student's exercise functions in a separate, restricted process that only returns data.

The grader (``python -m visiondl_keras grade``) runs the instructor's tests in a process of its own
that never imports a student's code: the ``ex`` fixture hands the tests a :class:`RemoteModule`,
whose functions send their arguments to a worker process (``sandbox_worker.py``) and return what
the student's function returned there. Every pass/fail decision and every point is made in the
grader's process, so nothing the student's code does (rewrite a grades file, exit early, patch
pytest or numpy, print a fake score table) can change a score; it can only return values.

The worker runs with limits: CPU seconds, memory, processes and file size (``resource`` limits),
no new processes, sockets or raw memory access (a Python audit hook), no writes outside its own
scratch folder and no reads of the graded tests or the solutions. It runs as the grader's user:
the audit hook is the fence, so for a class you do not trust, grade in a container or a throw-away
account as well. Results come back through a restricted unpickler that accepts
only plain Python values and numpy arrays, so a returned object cannot pretend to equal anything.

Example::

    with RemoteModule(Path("student/ex05_evaluation.py"), forbidden=["exercises", "solutions"]) as ex:
        ex.confusion_matrix([0, 1], [0, 0], 2)   # runs in the worker; returns a numpy array
"""

from __future__ import annotations

import builtins
import collections
import io
import json
import os
import pickle
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

WORKER = Path(__file__).resolve().with_name("sandbox_worker.py")
MAX_MESSAGE_BYTES = 256 * 2**20

# What a graded function may return (besides None, bools, numbers, strings, bytes, lists, tuples, dicts).
_SAFE_GLOBALS = {
    ("builtins", name) for name in ("complex", "set", "frozenset", "slice", "range", "bytearray")
} | {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype")}


# Libraries a worker may load before its audit hook is in place (their imports load C extensions);
# a student module's other imports happen under the hook.
PRELOADABLE = ("numpy", "scipy", "PIL", "keras", "tensorflow", "jax", "torch", "sklearn", "matplotlib")


def preload_for(module_path) -> list[str]:
    """The libraries of :data:`PRELOADABLE` that ``module_path`` imports (numpy always)."""
    import ast

    try:
        tree = ast.parse(Path(module_path).read_text(encoding="utf-8", errors="replace"))
    except (OSError, SyntaxError, ValueError):
        return ["numpy"]
    names = {"numpy"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return [n for n in PRELOADABLE if n in names]


class SandboxError(Exception):
    """The student's process failed (crashed, timed out, or sent something the grader refuses)."""


class RemoteError(Exception):
    """The student's function raised an exception the grader has no class for (type name in the message)."""


@dataclass
class Limits:
    """Resource limits of a worker process."""

    cpu_seconds: int = 300
    memory_bytes: int = 6 * 2**30
    memory_bytes_with_keras: int = 24 * 2**30  # TensorFlow reserves much address space
    processes: int = 64  # threads count too (numpy, Keras); new processes are refused by the audit hook
    file_bytes: int = 16 * 2**20
    open_files: int = 256


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS or (module.startswith("numpy") and name == "dtype"):
            return super().find_class(module, name)
        if module in ("numpy.dtypes",) and name.endswith("DType"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the function returned a {module}.{name}; only plain values and numpy arrays count")


def safe_loads(data: bytes):
    """Unpickle ``data`` accepting only plain Python values and numpy arrays/scalars."""
    return _RestrictedUnpickler(io.BytesIO(data)).load()


def _user_processes(uid: int) -> int:
    count = 0
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry}/task"))
            except OSError:
                continue
    return count


def _preexec(limits: Limits, memory: int, nproc: int):
    def apply():
        import resource

        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 5))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (limits.open_files, limits.open_files))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))  # counts the user's threads; root is exempt

    return apply


class Worker:
    """One worker process serving one student module."""

    def __init__(self, module_path: Path, forbidden, preload=(), limits: Limits | None = None,
                 start_timeout: float = 120.0):
        self.limits = limits or Limits()
        self.scratch = Path(tempfile.mkdtemp(prefix="visiondl-sandbox-"))
        submission = self.scratch / "submission"
        submission.mkdir()
        target = submission / Path(module_path).name
        shutil.copyfile(module_path, target)
        nproc = self.limits.processes + _user_processes(os.getuid())
        config = {"scratch": str(self.scratch), "module_path": str(target), "preload": list(preload),
                  "module_name": f"_graded_{Path(module_path).stem}", "forbidden": [str(Path(p).resolve()) for p in forbidden]}
        memory = self.limits.memory_bytes_with_keras if "keras" in preload else self.limits.memory_bytes
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.scratch), "OMP_NUM_THREADS": "1",
               "OPENBLAS_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3", "MPLBACKEND": "Agg",
               "KERAS_BACKEND": os.environ.get("KERAS_BACKEND", "tensorflow"), "PYTHONDONTWRITEBYTECODE": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(WORKER), json.dumps(config)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, cwd=self.scratch, env=env, start_new_session=True,
            preexec_fn=_preexec(self.limits, memory, nproc))
        self.log: collections.deque[str] = collections.deque(maxlen=50)
        threading.Thread(target=self._drain, daemon=True).start()
        self.ready = self._read(start_timeout)

    def _drain(self):
        for line in iter(self.proc.stderr.readline, b""):
            self.log.append(line.decode(errors="replace").rstrip())

    def _read_exact(self, n: int, deadline: float) -> bytes:
        fd, chunks, got = self.proc.stdout.fileno(), [], 0
        while got < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                raise TimeoutError
            chunk = os.read(fd, min(n - got, 1 << 20))
            if not chunk:
                raise EOFError
            chunks.append(chunk)
            got += len(chunk)
        return b"".join(chunks)

    def _read(self, timeout: float):
        deadline = time.monotonic() + timeout
        (n,) = struct.unpack("<Q", self._read_exact(8, deadline))
        if n > MAX_MESSAGE_BYTES:
            raise SandboxError(f"the answer is too large ({n / 2**20:.0f} MB)")
        return safe_loads(self._read_exact(n, deadline))

    def cpu_seconds(self) -> float:
        """CPU time the worker has used so far (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError, IndexError):
            return 0.0

    def limit_cpu(self, seconds: float) -> None:
        """Let the worker use at most ``seconds`` more CPU time (then the kernel stops it)."""
        try:
            import resource

            soft = int(self.cpu_seconds() + seconds) + 1
            resource.prlimit(self.proc.pid, resource.RLIMIT_CPU, (soft, soft + 5))
        except (ImportError, AttributeError, OSError, ValueError):
            pass  # no prlimit here: the wall-clock limit still applies

    def call(self, name: str, args, kwargs, timeout: float):
        """Call ``name(*args, **kwargs)`` in the worker within ``timeout`` CPU seconds (and three times
        that in wall-clock seconds, for a call that sleeps); returns the worker's answer tuple."""
        data = pickle.dumps((name, args, kwargs), protocol=4)
        self.limit_cpu(timeout)
        try:
            self.proc.stdin.write(struct.pack("<Q", len(data)) + data)
            self.proc.stdin.flush()
            return self._read(3 * timeout + 10)
        except (BrokenPipeError, EOFError, struct.error):
            raise SandboxError(self._death()) from None
        except pickle.UnpicklingError as exc:
            raise SandboxError(str(exc)) from None

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return "the student's process stopped answering"
        if code is not None and code < 0:
            reason = {signal.SIGXCPU: "CPU time limit", signal.SIGKILL: "killed (memory?)",
                      signal.SIGXFSZ: "file size limit"}.get(-code, signal.Signals(-code).name)
            return f"the student's process died ({reason})"
        return f"the student's process exited (status {code}) instead of answering"

    def close(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                self.proc.kill()
        self.proc.wait()
        shutil.rmtree(self.scratch, ignore_errors=True)


def _encode(value):
    keras = sys.modules.get("keras")
    if keras is not None and isinstance(value, keras.Model):
        return ("keras_model", value.to_json(), value.get_weights())
    return value


def _apply_state(model, state: list) -> None:
    layers = list(model._flatten_layers(include_self=True))
    if len(layers) != len(state):
        raise SandboxError("the model came back with a different structure")
    for layer, trainable in zip(layers, state):
        layer.trainable = bool(trainable)


def _apply_changes(values: list, changes: list) -> None:
    """Change the caller's arguments as the call changed the worker's copies (in place)."""
    import numpy as np

    for index, kind, new in changes:
        old = values[index] if 0 <= index < len(values) else None
        if kind == "array" and isinstance(old, np.ndarray) and isinstance(new, np.ndarray):
            if old.shape == new.shape and old.flags.writeable:
                old[...] = new
        elif kind == "generator" and isinstance(old, np.random.Generator) and isinstance(new, dict):
            old.bit_generator.state = new
        elif kind == "list" and isinstance(old, list) and isinstance(new, list):
            old[:] = new


class RemoteModule:
    """A student's module as the tests see it: attribute access gives functions that run in a worker.

    Args:
        module_path: the student's ``exNN_name.py``.
        forbidden: folders the worker may not read (the graded tests, the solutions).
        preload: modules the worker imports before the student's code is restricted (``"keras"``).
        timeout: CPU seconds one call may use (wall-clock: three times that plus 10 s); past it the
            worker is killed and started again for the next call.
        errors: exception classes to raise for ``"missing"``, ``"import"`` and ``"timeout"``.
    """

    def __init__(self, module_path, forbidden=(), preload=(), timeout: float = 60.0, errors=None,
                 limits: Limits | None = None):
        self._path, self._forbidden = Path(module_path), list(forbidden)
        self._preload = list(dict.fromkeys([*preload, *preload_for(module_path)]))
        self._timeout, self._limits = float(timeout), limits
        self._errors = {"missing": FileNotFoundError, "import": ImportError, "timeout": TimeoutError, **(errors or {})}
        self._worker: Worker | None = None
        self._import_error: str | None = None

    def _ensure(self) -> Worker:
        if self._import_error is not None:
            raise self._errors["import"](self._import_error)
        if not self._path.is_file():
            raise self._errors["missing"](f"{self._path.name} not found in {self._path.parent}.")
        if self._worker is None or self._worker.proc.poll() is not None:
            self.close()
            try:
                worker = Worker(self._path, self._forbidden, self._preload, self._limits)
            except (EOFError, TimeoutError, struct.error, pickle.UnpicklingError, SandboxError) as exc:
                self._import_error = f"{self._path.name}: the student's process did not start ({type(exc).__name__})"
                raise self._errors["import"](self._import_error) from None
            if worker.ready[0] != "ready":
                self._import_error = f"{self._path.name} {worker.ready[1]}"
                worker.close()
                raise self._errors["import"](self._import_error)
            self._worker = worker
        return self._worker

    def _call(self, name, args, kwargs):
        worker = self._ensure()
        values = [*args, *kwargs.values()]
        encoded = [_encode(v) for v in values]
        models = [v for v, e in zip(values, encoded) if e is not v]  # in the order the worker rebuilds them
        try:
            answer = worker.call(name, encoded[:len(args)], dict(zip(kwargs, encoded[len(args):])), self._timeout)
        except TimeoutError:
            self.close()
            raise self._errors["timeout"](f"{name} did not return within {3 * self._timeout + 10:g} s (waiting forever?)"
                                          ) from None
        except SandboxError as exc:
            self.close()
            if "CPU time limit" in str(exc):
                raise self._errors["timeout"](f"{name} used more than {self._timeout:g} s of CPU time (an infinite loop?)"
                                              ) from None
            raise
        if answer[0] == "error":
            _, type_name, message = answer
            cls = getattr(builtins, type_name, None)
            if isinstance(cls, type) and issubclass(cls, Exception) and cls.__module__ == "builtins":
                raise cls(message)
            raise RemoteError(f"{type_name}: {message}")
        _, result, states, changes = answer
        for model, state in zip(models, states):
            _apply_state(model, state)
        _apply_changes(values, changes)
        return result

    def probe(self, fn, *args, **kwargs):
        """Run the grader's function ``fn(module, *args, **kwargs)`` in the worker and return its result.

        For what only a few lines of code can exercise (a Keras layer, a callback inside ``fit``):
        ``fn`` must be a self-contained module-level function (it is sent as source, so it imports
        what it needs) that returns plain values or numpy arrays; the decisions stay in the tests.
        """
        import inspect
        import textwrap

        source = textwrap.dedent(inspect.getsource(fn))
        return self._call("__probe__", (source, fn.__name__, args), kwargs)

    def __getattr__(self, name: str):
        if name.startswith("_"):
            raise AttributeError(name)

        def remote(*args, **kwargs):
            return self._call(name, args, kwargs)

        remote.__name__ = remote.__qualname__ = name
        return remote

    def close(self):
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
