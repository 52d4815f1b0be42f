"""The process that runs a student's exercise module for the grader (see ``sandbox.py``).

Started by :class:`visiondl_keras.course.sandbox.Worker` as ``python -I sandbox_worker.py CONFIG_JSON``
with resource limits already set. It imports what the grader asks it to preload, then installs an
audit hook that refuses writes outside its scratch folder, reads of the graded tests and the
solutions, new processes, sockets, signals to other processes and raw memory access through ctypes,
then imports the student's module and answers calls: each request is ``(function name, args,
kwargs)``, each answer ``("ok", result, model_states, argument_changes)`` or ``("error", type name, message)``.
Messages are length-prefixed pickles on the original stdin/stdout; the student's prints go to stderr.

It decides nothing: the grader compares what comes back, so a student who controls this process
completely can still only hand back values.
"""

import importlib.util
import io
import json
import os
import pickle
import struct
import sys

_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
_BLOCKED_EVENTS = {
    "os.system", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.kill", "os.killpg",
    "subprocess.Popen", "socket.__new__", "socket.connect", "socket.bind", "ctypes.dlopen", "ctypes.dlsym",
    "ctypes.cdata", "ctypes.addressof", "ctypes.call_function", "pty.spawn", "os.setuid", "os.setgid",
    "shutil.chown", "resource.setrlimit", "resource.prlimit", "signal.pthread_kill", "os.chroot",
}
_PATH_WRITE_EVENTS = {"os.remove", "os.rename", "os.replace", "os.rmdir", "os.mkdir", "os.chmod", "os.chown",
                      "os.link", "os.symlink", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move",
                      "shutil.copyfile", "shutil.copytree"}
_PATH_READ_EVENTS = {"os.listdir", "os.scandir", "glob.glob", "os.walk"}


def _real(path) -> str:
    if isinstance(path, int):
        return ""
    try:
        return os.path.realpath(os.fsdecode(path))
    except (TypeError, ValueError):
        return ""


def _under(path: str, roots) -> bool:
    return any(path == r or path.startswith(r + os.sep) for r in roots)


def make_hook(scratch: str, forbidden: list[str]):
    """The audit hook: raises PermissionError for what a graded function may not do."""
    scratch = os.path.realpath(scratch)
    forbidden = [os.path.realpath(p) for p in forbidden]

    def hook(event, args):
        if event in _BLOCKED_EVENTS or event.startswith(("os.exec", "os.spawn", "os.posix_spawn")):
            raise PermissionError(f"not allowed while grading: {event}")
        if event == "open":
            path, mode, flags = (list(args) + [None, None, None])[:3]
            target = _real(path)
            if not target:
                return
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & _WRITE_FLAGS)
            if _under(target, forbidden) or (writing and not _under(target, [scratch])):
                raise PermissionError(f"not allowed while grading: open {target!r}")
        elif event in _PATH_WRITE_EVENTS:
            for p in args:
                t = _real(p) if isinstance(p, (str, bytes, os.PathLike)) else ""
                if t and not _under(t, [scratch]):
                    raise PermissionError(f"not allowed while grading: {event} {t!r}")
        elif event in _PATH_READ_EVENTS and args:
            t = _real(args[0]) if isinstance(args[0], (str, bytes, os.PathLike)) else ""
            if t and _under(t, forbidden):
                raise PermissionError(f"not allowed while grading: {event} {t!r}")

    return hook


class _Refused:
    """What ``visiondl_keras`` gives a student's code here: anything, except that calling it raises."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Refused(f"{self._name}.{attr}")

    def __call__(self, *args, **kwargs):
        raise PermissionError(f"{self._name}: a graded function may not use the package's own implementation")


class _RefusedModule(type(sys)):
    def __getattr__(self, attr):
        if attr.startswith("__") and attr.endswith("__"):
            raise AttributeError(attr)
        return _Refused(f"{self.__name__}.{attr}")


class _PackageBlocker:
    """A meta-path finder: importing ``visiondl_keras`` succeeds, but using it fails (per function, so
    a module that imports it still loads and only the functions that call it lose their points). A
    student who removes this finder meets the audit hook instead: the package's files are unreadable."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] != "visiondl_keras":
            return None
        return importlib.util.spec_from_loader(name, self, is_package=True)

    def create_module(self, spec):
        module = _RefusedModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        return None


def _read_message(stream):
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    return pickle.loads(stream.read(n))


def _write_message(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=4)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _rebuild_model(spec):
    """A Keras model sent by the grader as ``("keras_model", json, weights)``."""
    import keras

    model = keras.models.model_from_json(spec[1])
    model.set_weights(spec[2])
    return model


def _model_state(model) -> list:
    """The trainable flag of the model and of each of its layers, in a fixed order."""
    return [bool(layer.trainable) for layer in model._flatten_layers(include_self=True)]


def _decode(value, models):
    if isinstance(value, tuple) and len(value) == 3 and value[0] == "keras_model":
        model = _rebuild_model(value)
        models.append(model)
        return model
    return value


def _changes(values, before) -> list:
    """What the call changed in its arguments: ``(index, kind, new value)`` for arrays modified in
    place, random generators (their state) and lists, so that the grader's copies change the same way."""
    import numpy as np

    changes = []
    for i, (value, old) in enumerate(zip(values, before)):
        if isinstance(value, np.ndarray):
            if old is not None and not (old.shape == value.shape and old.dtype == value.dtype
                                        and np.array_equal(old, value, equal_nan=True)):
                changes.append((i, "array", value))
        elif isinstance(value, np.random.Generator):
            changes.append((i, "generator", value.bit_generator.state))
        elif isinstance(value, list) and value != old:
            changes.append((i, "list", value))
    return changes


def _snapshot(value):
    import numpy as np

    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return list(value)
    return None


def _run_probe(module, source: str, name: str, args, **kwargs):
    try:
        namespace = {"__name__": "_probe"}
        exec(compile(source, f"<probe {name}>", "exec"), namespace)
        return ("ok", namespace[name](module, *args, **kwargs), [], [])
    except BaseException as exc:  # noqa: BLE001
        return ("error", type(exc).__name__, str(exc)[:2000])


def serve(config: dict) -> None:
    chan_in = os.fdopen(os.dup(0), "rb")
    chan_out = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the student's prints go to the log, never into the channel
    sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", buffering=0), write_through=True)
    for name in config.get("preload", []):
        importlib.import_module(name)
    os.chdir(config["scratch"])
    for name in [m for m in sys.modules if m.split(".")[0] == "visiondl_keras"]:
        del sys.modules[name]
    sys.meta_path.insert(0, _PackageBlocker())
    sys.addaudithook(make_hook(config["scratch"], config["forbidden"]))
    try:
        spec = importlib.util.spec_from_file_location(config["module_name"], config["module_path"])
        module = importlib.util.module_from_spec(spec)
        sys.modules[config["module_name"]] = module
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        _write_message(chan_out, ("import_error", f"does not compile: {exc.msg} (line {exc.lineno})"))
        return
    except BaseException as exc:  # noqa: BLE001 - anything the module raises is the student's fault
        _write_message(chan_out, ("import_error", f"raised while being imported: {type(exc).__name__}: {exc}"))
        return
    _write_message(chan_out, ("ready",))
    while True:
        request = _read_message(chan_in)
        if request is None:
            return
        name, args, kwargs = request
        models: list = []
        if name == "__probe__":  # grader code that exercises a class (a layer, a callback) and returns data
            answer = _run_probe(module, *args, **kwargs)
            _write_message(chan_out, answer)
            continue
        try:
            func = getattr(module, name)
            args = [_decode(a, models) for a in args]
            kwargs = {k: _decode(v, models) for k, v in kwargs.items()}
            values = [*args, *kwargs.values()]
            before = [_snapshot(v) for v in values]
            result = func(*args, **kwargs)
            answer = ("ok", result, [_model_state(m) for m in models], _changes(values, before))
        except BaseException as exc:  # noqa: BLE001
            answer = ("error", type(exc).__name__, str(exc)[:2000])
        try:
            _write_message(chan_out, answer)
        except Exception as exc:  # noqa: BLE001 - e.g. a result that cannot be pickled
            _write_message(chan_out, ("error", "UnpicklableResult", f"{type(exc).__name__}: {exc}"[:2000]))


if __name__ == "__main__":
    serve(json.loads(sys.argv[1]))
