"""Runtime shim loaded into every sandboxed interpreter (by ``sitecustomize``).

It records, as JSON lines appended to ``$ISSUEMINE_EVENTS``:

- each converter call (the entry points of the host's converter catalog, passed as JSON in
  ``$ISSUEMINE_ENTRIES``: torch.onnx.export, tf2onnx.convert.from_*, ...): the API, the
  exporter, the opset, the inputs' shapes, the outcome and, on failure, the exception with its
  frames (the host infers the failing stage from them);
- after a successful export, whether ONNX Runtime loads the model and how its outputs differ from
  the framework's on the captured inputs and a few random ones of the same shapes, under each
  tolerance policy the host passed in ``$ISSUEMINE_POLICIES``;
- attempts the sandbox forbids, seen through an audit hook (network, secret files, writes
  outside the run's directory, the script reading credential variables). The sandbox contains
  them; the hook only makes them visible, and a determined snippet can evade it;
- how the script ended.

It runs inside whatever environment the user picked, so it imports nothing of issuemine and
only the standard library at import time. A hostile snippet can forge these events: they decide
the verdict, never the containment.
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
POLICIES_ENV = "ISSUEMINE_POLICIES"
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


def emit(event: dict[str, Any]) -> None:
    path = os.environ.get(EVENTS_ENV)
    if not path:
        return
    event.setdefault("pid", os.getpid())
    line = json.dumps(event, default=repr)
    if len(line) > MAX_EVENT:
        line = json.dumps({"event": event.get("event"), "pid": os.getpid(), "truncated": True})
    _local.busy = True
    try:
        # Non-blocking: a snippet that turned the file into a FIFO must not hang its own events.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
        finally:
            os.close(fd)
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


def _violation(kind: str, detail: str) -> None:
    emit({"event": "violation", "kind": kind, "detail": detail[:500]})


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if getattr(_local, "busy", False) or not os.environ.get(EVENTS_ENV):
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


def _policies() -> list[dict[str, Any]]:
    try:
        return json.loads(os.environ.get(POLICIES_ENV) or "[]")
    except ValueError:
        return []


def _shape(value: Any) -> Any:
    shape = getattr(value, "shape", None)
    return (
        {"shape": [int(d) if isinstance(d, int) else str(d) for d in shape], "dtype": str(value.dtype)}
        if (shape is not None and hasattr(value, "dtype"))
        else type(value).__name__
    )


def _compare(reference: list[Any], actual: list[Any]) -> list[dict[str, Any]]:
    """Per output: shapes, max |Δ|, max relative Δ and, per policy, whether it is within tolerance."""
    import numpy as np

    results = []
    for index, (want, got) in enumerate(zip(reference, actual)):
        want, got = np.asarray(want), np.asarray(got)
        row: dict[str, Any] = {"output": index, "shape": list(want.shape), "onnx_shape": list(got.shape)}
        if want.shape != got.shape:
            row.update(max_abs=None, max_rel=None, within={p["name"]: False for p in _policies()}, problem="shape")
            results.append(row)
            continue
        if want.dtype.kind in "fc" or got.dtype.kind in "fc":
            a, b = want.astype(np.float64), got.astype(np.float64)
            nan_same = np.isnan(a) & np.isnan(b)
            diff = np.where(nan_same, 0.0, np.abs(a - b))
            diff = np.where(np.isnan(diff), np.inf, diff)
            scale = np.abs(a)
            rel = np.where(scale > 0, diff / np.where(scale > 0, scale, 1), np.where(diff > 0, np.inf, 0.0))
            row["max_abs"] = float(diff.max()) if diff.size else 0.0
            row["max_rel"] = float(rel.max()) if rel.size else 0.0
            row["within"] = {
                p["name"]: bool(np.all(diff <= float(p["atol"]) + float(p["rtol"]) * scale)) for p in _policies()
            }
        else:
            equal = bool(np.array_equal(want, got))
            row.update(max_abs=0.0 if equal else None, max_rel=0.0 if equal else None)
            row["within"] = {p["name"]: equal for p in _policies()}
            if not equal:
                row["problem"] = "values"
        results.append(row)
    if len(reference) != len(actual):
        results.append({"output": None, "problem": f"{len(reference)} framework outputs, {len(actual)} ONNX outputs"})
    return results


def _worst(trials: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    worst = [dict(row) for row in trials[0]]
    for trial in trials[1:]:
        for row, new in zip(worst, trial):
            for key in ("max_abs", "max_rel"):
                if new.get(key) is None or (row.get(key) is not None and new[key] > row[key]):
                    row[key] = new.get(key)
            if "within" in row and "within" in new:
                row["within"] = {k: row["within"][k] and new["within"].get(k, False) for k in row["within"]}
            if new.get("problem"):
                row["problem"] = new["problem"]
    return worst


def _onnx_facts(model: Any) -> dict[str, Any]:
    try:
        import onnx

        proto = model if hasattr(model, "graph") else onnx.load(model, load_external_data=False)
        opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        names = [n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}::{n.op_type}" for n in proto.graph.node]
        counts: dict[str, int] = {}
        for name in names:
            counts[name] = counts.get(name, 0) + 1
        return {
            "opset": opset,
            "ir_version": proto.ir_version,
            "nodes": len(proto.graph.node),
            "ops": sorted(counts)[:300],
            "op_counts": dict(sorted(counts.items())[:300]),
            "attributes": _attributes(proto),
        }
    except Exception as exc:
        return {"onnx_error": describe_exception(exc)}


def _attributes(proto: Any, limit: int = 60) -> dict[str, list[str]]:
    """Per operator, its distinct scalar attributes (``mode=b'linear'``, ``axis=1``): what a
    graph-level report (a wrong attribute, a missing fusion) is about."""
    import onnx

    found: dict[str, set[str]] = {}
    for node in proto.graph.node:
        for attribute in node.attribute:
            if attribute.type in (onnx.AttributeProto.INT, onnx.AttributeProto.FLOAT, onnx.AttributeProto.STRING):
                value = onnx.helper.get_attribute_value(attribute)
                found.setdefault(node.op_type, set()).add(f"{attribute.name}={value!r}"[:80])
    return {op: sorted(values)[:10] for op, values in sorted(found.items())[:limit]}


def _ort_session(model: Any) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = model.SerializeToString() if hasattr(model, "SerializeToString") else model
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _ort_check(model: Any, make_trials: Any) -> dict[str, Any]:
    """Load ``model`` (a path or ModelProto) in ONNX Runtime and compare with the framework.

    ``make_trials`` yields (framework outputs, ONNX input arrays) pairs, the captured inputs first."""
    facts: dict[str, Any] = _onnx_facts(model)
    try:
        session = _ort_session(model)
    except Exception as exc:
        facts["ort"] = {"status": "load-fail", "error": describe_exception(exc)}
        return facts
    facts["ort"] = {"status": "loaded"}
    names = [i.name for i in session.get_inputs()]
    trials = []
    try:
        for reference, feeds in make_trials():
            if len(feeds) != len(names):
                facts["compare_skipped"] = f"{len(feeds)} tensor inputs captured, the ONNX model takes {len(names)}"
                return facts
            try:
                outputs = session.run(None, dict(zip(names, feeds)))
            except Exception as exc:
                facts["ort"] = {"status": "run-fail", "error": describe_exception(exc)}
                return facts
            trials.append(_compare(reference, outputs))
    except Exception as exc:
        facts["compare_skipped"] = f"could not run the framework model: {type(exc).__name__}: {exc}"[:1000]
        return facts
    if trials:
        facts["compare"] = _worst(trials)
        facts["trials"] = len(trials)
    return facts


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

    facts = _ort_check(onnx_model, trials)
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
        return {
            **_onnx_facts(model_proto),
            **_ort_load_only(model_proto),
            "compare_skipped": f"{api}: no callable to compare with",
        }
    signature = list(signature)

    def run(arrays: list[Any]) -> list[Any]:
        tensors = [tf.constant(a) for a in arrays]
        out = target(*tensors, training=False) if api.endswith("from_keras") else target(*tensors)
        return [x.numpy() if hasattr(x, "numpy") else x for x in tf.nest.flatten(out)]

    drawn = [_tf_inputs(signature) for _ in range(1 + EXTRA_TRIALS)]

    def trials() -> Any:
        for arrays in drawn:
            yield run(arrays), arrays

    facts = _ort_check(model_proto, trials)
    facts["inputs"] = [_shape(a) for a in drawn[0]]
    return facts


def _ort_load_only(model: Any) -> dict[str, Any]:
    try:
        _ort_session(model)
    except Exception as exc:
        return {"ort": {"status": "load-fail", "error": describe_exception(exc)}}
    return {"ort": {"status": "loaded"}}


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
    skipped = f"{entry['call']}: no callable to compare with"
    return {**_onnx_facts(model), **_ort_load_only(model), "compare_skipped": skipped}


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
                call.update({**_onnx_facts(output), **_ort_load_only(output)})
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
            return {**_onnx_facts(output), **_ort_load_only(output), "compare_skipped": "no signature to call"}
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
        return {**_onnx_facts(output), **_ort_load_only(output), "compare_skipped": "no TensorFlow model to run"}
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

    facts = _ort_check(output, trials)
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
