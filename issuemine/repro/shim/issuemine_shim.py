"""Runtime shim loaded into every sandboxed interpreter (by ``sitecustomize``).

It records, as JSON lines sent to the run server (``$ISSUEMINE_EVENTS``: its socket, or a file):

- each converter call (the entry points of the host's converter catalog, passed as JSON in
  ``$ISSUEMINE_ENTRIES``: torch.onnx.export, tf2onnx.convert.from_*, ...): the API, the
  exporter, the opset, the inputs' shapes, the outcome and, on failure, the exception with its
  frames (the host infers the failing stage from them);
- after a successful export, the framework side of the comparison: the model, the captured inputs
  and a few random ones of the same shapes, and the framework's outputs on them, handed over to
  the run server, which runs ONNX Runtime and compares in a process of its own (``checker.py``);
- attempts the sandbox forbids, seen through an audit hook (network, secret files, writes
  outside the run's directory, the script reading credential variables). The sandbox contains
  them; the hook only makes them visible, and a determined snippet can evade it;
- how the script ended.

It runs inside whatever environment the user picked, so it imports nothing of issuemine and
only the standard library at import time. A hostile snippet can add events of its own, never
remove or read the shim's; it cannot touch ONNX Runtime's side of a comparison. Events decide the
verdict, never the containment.
"""

from __future__ import annotations

import functools
import importlib.abc
import json
import os
import re
import sys
import threading
import time
import traceback
from typing import Any

EVENTS_ENV = "ISSUEMINE_EVENTS"
RUN_DIR_ENV = "ISSUEMINE_RUN_DIR"
ENTRIES_ENV = "ISSUEMINE_ENTRIES"
COMMAND_LINES_ENV = "ISSUEMINE_COMMAND_LINES"
SWITCH_ENV = "ISSUEMINE_SWITCH"  # "off": run entry points with their switch keyword off (legacy exporter)
EXTRA_TRIALS = 2
MAX_EVENT = 200_000

_local = threading.local()
_depth = {"value": 0}

# Files a conversion snippet has no business reading.
SECRET_PATH = re.compile(
    r"^/etc/(shadow|gshadow|sudoers)|/\.ssh(/|$)|/\.aws(/|$)|/\.netrc$|/\.git-credentials$|/\.config/gcloud|"
    r"/\.docker/config\.json$|/\.kube(/|$)|^/proc/(?!self/)\d+/environ$"
)
CREDENTIAL_NAME = re.compile(r"TOKEN|SECRET|PASSW|API_KEY|ACCESS_KEY|CREDENTIAL|^AWS_|^GH_|^GITHUB_", re.I)
WRITE_EVENTS = {"os.mkdir", "os.remove", "os.rename", "os.rmdir", "os.truncate", "os.chmod", "os.symlink", "os.link"}
NETWORK_EVENTS = {"socket.connect", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname"}


_sink: dict[str, Any] = {}
_sink_lock = threading.Lock()


def _send(target: str, data: bytes) -> None:
    """``@NAME``: the run server's abstract Unix socket, one connection per process (a snippet can
    add lines to it, never read or take back what the shim sent). Otherwise a file, appended to."""
    if not target.startswith("@"):
        # Non-blocking: a snippet that turned the file into a FIFO must not hang its own events.
        fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return
    import socket

    with _sink_lock:
        sock = _sink.get("socket")
        if sock is None or _sink.get("pid") != os.getpid():  # a forked child opens its own
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(30)
            sock.connect("\0" + target[1:])
            _sink.update(socket=sock, pid=os.getpid())
        sock.sendall(data)


def emit(event: dict[str, Any]) -> None:
    target = os.environ.get(EVENTS_ENV)
    if not target:
        return
    event.setdefault("pid", os.getpid())
    line = json.dumps(event, default=repr)
    if len(line) > MAX_EVENT:
        line = json.dumps({"event": event.get("event"), "pid": os.getpid(), "truncated": True})
    _local.busy = True
    try:
        _send(target, (line + "\n").encode())
    except OSError:
        pass
    finally:
        _local.busy = False


def describe_exception(exc: BaseException, depth: int = 0) -> dict[str, Any]:
    frames = traceback.extract_tb(exc.__traceback__)[-60:]
    info: dict[str, Any] = {
        "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "message": str(exc)[:4000],
        "frames": [{"file": f.filename, "line": f.lineno, "func": f.name} for f in frames],
    }
    if isinstance(exc, OSError):
        info["errno"] = exc.errno
        info["filename"] = exc.filename if isinstance(exc.filename, str) else None
    if isinstance(exc, NameError):
        info["name"] = getattr(exc, "name", None)
    if isinstance(exc, ImportError):
        info["name"] = exc.name
    cause = exc.__cause__ or exc.__context__
    if cause is not None and depth < 3:
        info["cause"] = describe_exception(cause, depth + 1)
    return info


# -- audit hook: make forbidden attempts visible ---------------------------------------------------


def _run_dir() -> str:
    return os.environ.get(RUN_DIR_ENV) or "/tmp"


def _allowed_write(path: str) -> bool:
    real = os.path.abspath(path)
    return (
        real.startswith(_run_dir().rstrip("/") + "/")
        or real in ("/dev/null", "/dev/stdout", "/dev/stderr", "/dev/tty", _run_dir())
        or real.startswith(("/dev/shm/", "/dev/fd/", "/proc/self/fd/"))
    )


def _is_write(mode: Any, flags: Any) -> bool:
    if isinstance(mode, str) and any(c in mode for c in "wax+"):
        return True
    return isinstance(flags, int) and bool(flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC))


# What the sandbox's system-call filter refuses (repro/sandbox.py): attempts made from Python (a
# socket, os.unshare, a libc function looked up through ctypes) are recorded here. A raw
# ``syscall(N)`` through ctypes is refused all the same, but unnamed: ctypes audits the lookup of
# ``syscall``, not the number it is called with.
REFUSED_ENV = "ISSUEMINE_REFUSED"  # {"families": allowed socket families, "calls": refused calls}
FAMILY_NAMES = {17: "AF_PACKET", 40: "AF_VSOCK", 38: "AF_ALG", 31: "AF_BLUETOOTH", 29: "AF_CAN", 44: "AF_XDP"}
_refused: dict[str, Any] = {}


def _refused_lists() -> tuple[set[int] | None, set[str]]:
    """The host's lists (repro/sandbox.py passes them): socket families allowed, calls refused.
    Without them (the shim outside the sandbox) nothing is recorded."""
    if not _refused:
        try:
            found = json.loads(os.environ.get(REFUSED_ENV) or "{}")
        except ValueError:
            found = {}
        families = found.get("families") if isinstance(found, dict) else None
        calls = found.get("calls") if isinstance(found, dict) else None
        _refused["families"] = {-1, *families} if isinstance(families, list) else None  # -1: not chosen yet
        _refused["calls"] = set(calls) if isinstance(calls, list) else set()
    return _refused["families"], _refused["calls"]


def _refused_call(event: str, args: tuple[Any, ...]) -> str | None:
    """The refused system call an audit event is about to make, if any."""
    allowed, refused = _refused_lists()
    if allowed is None:
        return None
    if event == "socket.__new__" and len(args) >= 3:
        family, kind = args[1], args[2]
        if isinstance(family, int) and family not in allowed:
            return f"socket({FAMILY_NAMES.get(family, f'family {family}')})"
        if isinstance(kind, int) and kind > 0 and kind & 0xF in (3, 10):
            return "socket(SOCK_RAW)" if kind & 0xF == 3 else "socket(SOCK_PACKET)"
    elif event in ("os.unshare", "os.setns"):
        return event.split(".")[1]
    elif event == "ctypes.dlsym" and len(args) >= 2 and args[1] in refused:
        return str(args[1])
    return None


def _violation(kind: str, detail: str) -> None:
    emit({"event": "violation", "kind": kind, "detail": detail[:500]})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if getattr(_local, "busy", False) or not os.environ.get(EVENTS_ENV):
        return
    if event in ("socket.__new__", "os.unshare", "os.setns", "ctypes.dlsym"):
        _local.busy = True
        try:
            refused = _refused_call(event, args)
        finally:
            _local.busy = False
        if refused:
            _violation("syscall", f"tried {refused}, which the sandbox refuses")
        return
    if event == "open":
        path, mode, flags = args[0], args[1], args[2]
        if isinstance(path, bytes):
            path = path.decode(errors="replace")
        if not isinstance(path, str):
            return
        if SECRET_PATH.search(os.path.abspath(path)):
            _violation("secret-file", f"open {path}")
        elif _is_write(mode, flags) and not _allowed_write(path):
            _violation("write-outside", f"open {path} for writing")
    elif event in NETWORK_EVENTS:
        target = args[1] if event in ("socket.connect", "socket.sendto") else args[0]
        if event in ("socket.connect", "socket.sendto") and isinstance(target, (str, bytes)):
            return  # a Unix socket: only the sandbox's own files and peers are reachable that way
        _violation("network", f"{event} {target!r}")
    elif event in WRITE_EVENTS:
        path = args[0]
        if isinstance(path, (str, bytes)) and not _allowed_write(os.fsdecode(path)):
            _violation("write-outside", f"{event} {os.fsdecode(path)}")


class _GuardedEnviron(os._Environ):  # type: ignore[misc,name-defined]
    """os.environ that notices the script itself asking for credential-looking variables.

    Libraries look such names up routinely (and find nothing: the sandbox strips them), so only a
    lookup from the snippet's own code counts."""

    def __getitem__(self, key: str) -> str:
        if isinstance(key, str) and CREDENTIAL_NAME.search(key) and os.environ.get(EVENTS_ENV):
            caller = sys._getframe(1)
            while caller is not None and _is_plumbing(caller.f_code.co_filename):
                caller = caller.f_back  # type: ignore[assignment]
            if caller is not None and caller.f_code.co_filename.startswith(_run_dir()):
                _violation("credential", f"read environment variable {key}")
        return super().__getitem__(key)


def _is_plumbing(filename: str) -> bool:
    """Frames between the caller and the lookup: os, _collections_abc (frozen modules), this shim."""
    return (
        filename == __file__ or filename.startswith("<frozen") or filename.endswith(("/os.py", "/_collections_abc.py"))
    )


# -- converter wrappers -----------------------------------------------------------------------------


HANDOVER_ENV = "ISSUEMINE_HANDOVER"
_handovers = {"count": 0}


def _handover(model: Any, make_trials: Any = None, skipped: str | None = None) -> dict[str, Any]:
    """Hand the framework side of a comparison to the run server's checker (``checker.py``): the
    exported model (a path, bytes or a ModelProto) and, when ``make_trials`` is given, per trial the
    framework's outputs and the ONNX inputs it was fed (``make_trials`` yields those pairs, the
    captured inputs first). ONNX Runtime runs outside this process, after it has ended."""
    import numpy as np

    _handovers["count"] += 1
    base = os.environ.get(HANDOVER_ENV) or os.path.join(_run_dir(), ".handover")
    folder = os.path.join(base, f"{os.getpid()}-{_handovers['count']}")
    os.makedirs(folder)
    facts: dict[str, Any] = {"handover": folder}
    if hasattr(model, "SerializeToString"):
        model = model.SerializeToString()
    if isinstance(model, (bytes, bytearray)):
        with open(os.path.join(folder, "model.onnx"), "wb") as handle:
            handle.write(model)
        name = "model.onnx"
    else:
        name = os.path.abspath(os.fspath(model))  # next to its external data, if it has any
    arrays: dict[str, Any] = {}
    counts: list[list[int]] = []
    if make_trials is not None and skipped is None:
        try:
            for reference, feeds in make_trials():
                t = len(counts)
                outputs = [np.asarray(r) for r in reference]
                inputs = [np.asarray(f) for f in feeds]
                if any(a.dtype == object for a in outputs + inputs):
                    skipped = "an output or input of the framework model is not a tensor"
                    break
                arrays.update({f"ref{t}_{i}": a for i, a in enumerate(outputs)})
                arrays.update({f"feed{t}_{i}": a for i, a in enumerate(inputs)})
                counts.append([len(outputs), len(inputs)])
        except Exception as exc:
            skipped = f"could not run the framework model: {type(exc).__name__}: {exc}"[:1000]
    if skipped is not None:
        facts["compare_skipped"] = skipped
        counts = []
    np.savez(os.path.join(folder, "trials.npz"), **(arrays if counts else {}))
    with open(os.path.join(folder, "meta.json"), "w") as handle:
        json.dump({"model": name, "trials": counts}, handle)
    return facts


def _shape(value: Any) -> Any:
    shape = getattr(value, "shape", None)
    return (
        {"shape": [int(d) if isinstance(d, int) else str(d) for d in shape], "dtype": str(value.dtype)}
        if (shape is not None and hasattr(value, "dtype"))
        else type(value).__name__
    )


def _tree_leaves(value: Any) -> list[Any]:
    """The leaves of nested tuples, lists and dicts (model outputs such as Hugging Face's are dict
    subclasses). torch.utils._pytree is private and changed between releases (no tree_leaves in
    1.x), so the shim walks the containers itself."""
    if isinstance(value, dict):
        return [leaf for item in value.values() for leaf in _tree_leaves(item)]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _tree_leaves(item)]
    return [value]


def _tree_map(function: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _tree_map(function, v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_tree_map(function, item) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(_tree_map(function, item) for item in value)
    return function(value)


def _torch_check(args: tuple[Any, ...], kwargs: dict[str, Any], result: Any, dynamo: bool) -> dict[str, Any]:
    import numpy as np
    import torch

    model: Any = args[0] if args else kwargs.get("model")
    model_args = args[1] if len(args) > 1 else kwargs.get("args", ())
    target: Any = args[2] if len(args) > 2 else kwargs.get("f")
    model_kwargs = dict(kwargs.get("kwargs") or {})
    if not isinstance(model_args, tuple):
        model_args = (model_args,)
    if model_args and isinstance(model_args[-1], dict) and not dynamo:
        model_kwargs, model_args = {**model_args[-1], **model_kwargs}, model_args[:-1]
    if hasattr(result, "model_proto"):
        onnx_model: Any = result.model_proto
    elif isinstance(target, (str, os.PathLike)):
        onnx_model = os.fspath(target)
    elif hasattr(target, "getvalue"):
        onnx_model = bytes(target.getvalue())
    else:
        return {"compare_skipped": "the exported model was not saved where the shim can read it"}
    # torch.export exists from torch 2.1 on: a feature, not a version, decides.
    program = getattr(getattr(torch, "export", None), "ExportedProgram", None)
    if program is not None and isinstance(model, program):
        model = model.module()

    def leaves(value: Any) -> list[Any]:
        return [x for x in _tree_leaves(value) if isinstance(x, torch.Tensor)]

    def to_numpy(values: list[Any]) -> list[Any]:
        return [v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in values]

    def run(call_args: tuple[Any, ...], call_kwargs: dict[str, Any]) -> list[Any]:
        training = getattr(model, "training", False)
        if not dynamo and isinstance(model, torch.nn.Module):
            model.eval()  # the TorchScript exporter exports in eval mode unless told otherwise
        try:
            with torch.no_grad():
                out = model(*call_args, **call_kwargs)
        finally:
            if isinstance(model, torch.nn.Module):
                model.train(training)
        return to_numpy([x for x in _tree_leaves(out) if x is not None])

    def trials() -> Any:
        yield run(model_args, model_kwargs), to_numpy(leaves((model_args, model_kwargs)))
        tensors = leaves((model_args, model_kwargs))
        if tensors and all(t.is_floating_point() for t in tensors):
            for _ in range(EXTRA_TRIALS):
                fresh_args, fresh_kwargs = _tree_map(
                    lambda x: torch.randn_like(x) if isinstance(x, torch.Tensor) else x, (model_args, model_kwargs)
                )
                yield run(fresh_args, fresh_kwargs), to_numpy(leaves((fresh_args, fresh_kwargs)))

    facts = _handover(onnx_model, trials)
    facts["inputs"] = [_shape(t) for t in leaves((model_args, model_kwargs))]
    return facts


def _tf_inputs(signature: Any) -> list[Any]:
    import numpy as np

    arrays = []
    for spec in signature:
        shape = [d if d is not None else 2 for d in (spec.shape.as_list() if spec.shape.rank is not None else [2])]
        dtype = np.dtype(spec.dtype.as_numpy_dtype)
        if dtype.kind == "f":
            arrays.append(np.random.standard_normal(shape).astype(dtype))
        elif dtype.kind == "b":
            arrays.append(np.random.random(shape) > 0.5)
        else:
            arrays.append(np.random.randint(0, 3, size=shape).astype(dtype))
    return arrays


def _tf2onnx_check(api: str, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> dict[str, Any]:
    import tensorflow as tf

    model_proto = result[0] if isinstance(result, tuple) else result
    target: Any = args[0] if args else kwargs.get("function", kwargs.get("model"))
    signature = kwargs.get("input_signature") or (args[1] if len(args) > 1 else None)
    if api.endswith("from_keras") and signature is None and getattr(target, "inputs", None):
        signature = [tf.TensorSpec(t.shape, t.dtype) for t in target.inputs]
    if not signature:
        return _handover(model_proto, skipped=f"{api}: no callable to compare with")
    signature = list(signature)

    def run(arrays: list[Any]) -> list[Any]:
        tensors = [tf.constant(a) for a in arrays]
        out = target(*tensors, training=False) if api.endswith("from_keras") else target(*tensors)
        return [x.numpy() if hasattr(x, "numpy") else x for x in tf.nest.flatten(out)]

    drawn = [_tf_inputs(signature) for _ in range(1 + EXTRA_TRIALS)]

    def trials() -> Any:
        for arrays in drawn:
            yield run(arrays), arrays

    facts = _handover(model_proto, trials)
    facts["inputs"] = [_shape(a) for a in drawn[0]]
    return facts


def _opset_arg(entry: dict[str, Any], kwargs: dict[str, Any]) -> Any:
    return kwargs.get("opset_version", kwargs.get("opset"))


def _switch_default(function: Any, keyword: str | None) -> bool:
    """The default of the keyword that switches exporters (torch.onnx.export's ``dynamo``: True
    since torch 2.9, absent before)."""
    import inspect

    if not keyword:
        return False
    try:
        parameter = inspect.signature(function).parameters.get(keyword)
    except (TypeError, ValueError):
        return False
    return bool(parameter is not None and parameter.default is True)


def _check(
    entry: dict[str, Any], exporter: str | None, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any
) -> dict[str, Any]:
    """Compare the converted model with the framework, the way the entry's ``check`` says."""
    kind = entry.get("check")
    if kind == "torch":
        return _torch_check(args, kwargs, result, exporter == "dynamo")
    if kind == "tensorflow":
        return _tf2onnx_check(entry["call"], args, kwargs, result)
    if kind == "none":
        return {"compare_skipped": f"{entry['call']} returns no ONNX model to check"}
    model = result[0] if isinstance(result, tuple) else result
    return _handover(model, skipped=f"{entry['call']}: no callable to compare with")


def write_workdir_arrays(specs: list[dict[str, Any]], folder: str) -> None:
    """Write the arrays a converter reads from its working folder and would otherwise download
    (onnx2tf's sample images; the sandbox has no network): seeded random values, each file once.
    Also used by difftest's onnx2tf adapter, whose workers may write at once: each replaces the
    file with the same bytes."""
    if not specs:
        return
    import numpy as np

    os.makedirs(folder, exist_ok=True)
    for spec in specs:
        path = os.path.join(folder, spec["name"])
        if os.path.exists(path):
            continue
        values = np.random.default_rng(0).random(tuple(spec["shape"])).astype(spec.get("dtype", "float32"))
        partial = os.path.join(folder, f".{spec['name']}.{os.getpid()}")
        with open(partial, "wb") as handle:
            np.save(handle, values)
        os.replace(partial, path)


def _wrap(module: Any, entry: dict[str, Any]) -> None:
    attr, api = entry["attr"], entry["call"]
    original = getattr(module, attr, None)
    if original is None or getattr(original, "__issuemine_wrapped__", False):
        return

    switch_default = _switch_default(original, entry.get("switch_keyword"))

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _depth["value"] or not os.environ.get(EVENTS_ENV):
            return original(*args, **kwargs)  # a converter calling another one: record the outer call only
        exporter = entry.get("exporter")
        keyword = entry.get("switch_keyword")
        if keyword and switch_default and keyword not in kwargs and os.environ.get(SWITCH_ENV) == "off":
            # The snippet's own exporter, not today's default (torch.onnx.export(dynamo=False)).
            kwargs[keyword] = False
        if keyword and bool(kwargs.get(keyword, switch_default)):
            exporter = entry.get("switch_exporter")
        call: dict[str, Any] = {"event": "convert", "api": api, "opset_arg": _opset_arg(entry, kwargs)}
        if exporter:
            call["exporter"] = exporter
        try:
            write_workdir_arrays(entry.get("workdir_arrays") or [], os.getcwd())
        except (OSError, ImportError, ValueError) as exc:  # the converter will say what it missed
            call["workdir_arrays_error"] = f"{type(exc).__name__}: {exc}"[:300]
        emit({"event": "convert-start", "api": api, "exporter": exporter})
        started = time.perf_counter()
        _depth["value"] += 1
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            call.update(status="error", seconds=time.perf_counter() - started, error=describe_exception(exc))
            emit(call)
            raise
        finally:
            _depth["value"] -= 1
        call.update(status="ok", seconds=time.perf_counter() - started)
        emit({"event": "converted", "api": api})  # so a crash of ONNX Runtime itself is told apart
        try:
            call.update(_check(entry, exporter, args, kwargs, result))
        except Exception as exc:
            call["check_error"] = describe_exception(exc)
        emit(call)
        return result

    wrapper.__issuemine_wrapped__ = True  # type: ignore[attr-defined]
    setattr(module, attr, wrapper)


def _entries() -> list[dict[str, Any]]:
    """The converter entry points to wrap, as the host's converter catalog describes them."""
    try:
        entries = json.loads(os.environ.get(ENTRIES_ENV) or "[]")
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict) and e.get("module") and e.get("attr")]


def _patches() -> dict[str, Any]:
    by_module: dict[str, list[dict[str, Any]]] = {}
    for entry in _entries():
        by_module.setdefault(entry["module"], []).append(entry)

    def patcher(entries: list[dict[str, Any]]) -> Any:
        def patch(module: Any) -> None:
            for entry in entries:
                _wrap(module, entry)

        return patch

    return {name: patcher(entries) for name, entries in by_module.items()}


PATCHES: dict[str, Any] = {}
COMMAND_LINES: dict[str, dict[str, Any]] = {}


class _PostImportLoader(importlib.abc.Loader):
    def __init__(self, loader: Any, name: str) -> None:
        self._loader, self._name = loader, name

    def create_module(self, spec: Any) -> Any:
        return self._loader.create_module(spec)

    def exec_module(self, module: Any) -> None:
        self._loader.exec_module(module)
        if self._name in PATCHES:
            PATCHES[self._name](module)

    def get_code(self, name: str) -> Any:
        # Only runpy asks for the code (``python -m NAME``); an import executes the module instead.
        if name in COMMAND_LINES and name == self._name:
            _start_command_line(COMMAND_LINES[name])
        return self._loader.get_code(name)

    def __getattr__(self, name: str) -> Any:
        # runpy (``python -m tf2onnx.convert``) asks the loader for get_code, is_package and
        # get_filename; pkgutil and linecache for get_source: the wrapped loader answers them.
        return getattr(self._loader, name)


class _PostImportFinder(importlib.abc.MetaPathFinder):
    """Patches the converter modules right after they are first imported, however the snippet imports them."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
        if name not in PATCHES and name not in COMMAND_LINES:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PostImportLoader(spec.loader, name)
                return spec
        return None


# -- converter command lines (python -m tf2onnx.convert ...) ----------------------------------------

_cli: dict[str, Any] = {}


def _command_lines() -> dict[str, dict[str, Any]]:
    try:
        found = json.loads(os.environ.get(COMMAND_LINES_ENV) or "[]")
    except ValueError:
        return {}
    return {c["module"]: c for c in found if isinstance(c, dict) and isinstance(c.get("module"), str)}


def _flag(argv: list[str], flag: str | None) -> str | None:
    for index, word in enumerate(argv):
        if flag and word == flag and index + 1 < len(argv):
            return argv[index + 1]
        if flag and word.startswith(flag + "="):
            return word.split("=", 1)[1]
    return None


def _start_command_line(spec: dict[str, Any]) -> None:
    """``python -m MODULE`` of a converter's command line is starting in this process: record it as
    one conversion (what it calls inside is not recorded again), judged when the process ends."""
    if _cli or not os.environ.get(EVENTS_ENV):
        return
    _cli.update(spec=spec, started=time.perf_counter())
    _depth["value"] += 1
    emit({"event": "convert-start", "api": f"python -m {spec['module']}"})
    import atexit

    atexit.register(_finish_command_line)


def _finish_command_line() -> None:
    spec, argv = _cli["spec"], list(sys.argv[1:])
    call: dict[str, Any] = {
        "event": "convert",
        "api": f"python -m {spec['module']}",
        "opset_arg": _flag(argv, "--opset"),
        "argv": argv[:30],
        "seconds": time.perf_counter() - _cli["started"],
    }
    output = _flag(argv, spec.get("output_flag"))
    if _cli.get("error") is not None:
        call.update(status="error", error=_cli["error"])
    elif not output or not os.path.exists(output):
        message = f"the command wrote no model to {output or '(no output flag)'}"
        call.update(status="error", error={"type": "issuemine.NoOutput", "message": message, "frames": []})
    else:
        emit({"event": "converted", "api": call["api"]})
        call["status"] = "ok"
        try:
            if spec.get("check") == "tensorflow":
                call.update(_tf_command_line_check(argv, output))
            else:
                call.update(_handover(output, skipped=f"{call['api']}: no callable to compare with"))
        except Exception as exc:
            call["check_error"] = describe_exception(exc)
    emit(call)


def _tf_command_line_check(argv: list[str], output: str) -> dict[str, Any]:
    """Run the model the command read (--saved-model DIR or --keras FILE) in TensorFlow and the ONNX
    file it wrote in ONNX Runtime on the same random inputs, matched by name where they can be."""
    import onnx
    import tensorflow as tf

    saved, keras_file = _flag(argv, "--saved-model"), _flag(argv, "--keras")
    if saved:
        loaded = tf.saved_model.load(saved)
        key = _flag(argv, "--signature_def") or next(iter(loaded.signatures), None)
        if key is None:
            return _handover(output, skipped="no signature to call")
        function = loaded.signatures[key]
        specs = function.structured_input_signature[1]
        names = sorted(specs)
        signature = [specs[n] for n in names]

        def call(arrays: list[Any]) -> dict[str, Any]:
            out = function(**{n: tf.constant(a) for n, a in zip(names, arrays)})
            return {k: v.numpy() for k, v in out.items()}
    elif keras_file:
        model = tf.keras.models.load_model(keras_file)
        names = [getattr(t, "name", str(i)) for i, t in enumerate(model.inputs)]
        signature = [tf.TensorSpec(t.shape, t.dtype) for t in model.inputs]

        def call(arrays: list[Any]) -> dict[str, Any]:
            out = tf.nest.flatten(model([tf.constant(a) for a in arrays], training=False))
            return {str(i): v.numpy() for i, v in enumerate(out)}
    else:
        return _handover(output, skipped="no TensorFlow model to run")
    proto = onnx.load(output, load_external_data=False)
    initialized = {i.name for i in proto.graph.initializer}
    onnx_inputs = [i.name for i in proto.graph.input if i.name not in initialized]
    onnx_outputs = [o.name for o in proto.graph.output]
    drawn = [_tf_inputs(signature) for _ in range(1 + EXTRA_TRIALS)]

    def by_name(wanted: list[str], have: list[str]) -> list[int]:
        bare = [h.split(":")[0] for h in have]
        picks = [bare.index(w.split(":")[0]) if w.split(":")[0] in bare else None for w in wanted]
        return picks if None not in picks else list(range(len(wanted)))  # type: ignore[return-value]

    order = by_name(onnx_inputs, names)

    def trials() -> Any:
        for arrays in drawn:
            outputs = call(arrays)
            keys = list(outputs)
            reference = [outputs[keys[i]] for i in by_name(onnx_outputs, keys) if i < len(keys)]
            yield reference, [arrays[i] for i in order if i < len(arrays)]

    facts = _handover(output, trials)
    facts["inputs"] = [_shape(a) for a in drawn[0]]
    return facts


def _excepthook(kind: Any, value: BaseException, tb: Any) -> None:
    """Uncaught exceptions of any interpreter in the sandbox (e.g. ``python -m tf2onnx.convert``)."""
    error = describe_exception(value)
    if _cli:
        _cli["error"] = error  # the command line's conversion failed: its event says so at exit
    emit({"event": "uncaught", "argv": sys.argv[:8], "error": error})
    sys.__excepthook__(kind, value, tb)


def install() -> None:
    if getattr(sys, "__issuemine_shim__", False):
        return
    sys.__issuemine_shim__ = True  # type: ignore[attr-defined]
    sys.excepthook = _excepthook
    try:  # on a time-out the zygote asks for every thread's stack before killing: the stage of a hang
        import faulthandler
        import signal

        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, ValueError, OSError, RuntimeError):
        pass
    sys.addaudithook(_audit)
    os.environ.__class__ = _GuardedEnviron
    PATCHES.update(_patches())
    COMMAND_LINES.update(_command_lines())
    for name, patch in PATCHES.items():
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, _PostImportFinder())
