"""One measurement in a fresh process: latency or peak memory of one model in one runtime.

    python -m issuemine.quality.probe '{"mode": "latency", "runtime": "onnxruntime", ...}'

A fresh process per measurement keeps runtimes from sharing allocators, thread pools and caches
(TensorFlow fixes its thread pools at start-up; a process that ran torch first has a different
peak), and makes the memory high-water mark that of this model alone. Prints one JSON object.

Latency: after ``warmup`` calls, ``repeats`` rounds of ``runs`` timed calls per batch size; each
round gives a p50 and a p95 (ms per call), and the caller reports the median over rounds with
their spread. Memory: the process's resident high-water mark (VmHWM) after loading, then, after
resetting it (``/proc/self/clear_refs``), the high-water mark of 20 inferences of the largest
batch, less the resident size before them: the memory inference itself takes.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def _status(field: str) -> float:
    """A ``/proc/self/status`` figure in MB (VmRSS, VmHWM)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _runner(runtime: str, path: str, threads: int) -> Callable[[np.ndarray], Any]:
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = threads
        options.log_severity_level = 3
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        return lambda x: session.run(None, {name: x})
    if runtime == "torch":
        import torch

        if threads:
            torch.set_num_threads(threads)
            torch.set_num_interop_threads(threads)
        module = torch.jit.load(path) if not path.endswith(".pt2") else torch.export.load(path).module()
        module.eval()

        def call(x: np.ndarray) -> Any:
            with torch.inference_mode():
                return module(torch.from_numpy(x))

        return call
    if runtime == "keras":
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        import tensorflow as tf

        if threads:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        import keras

        model = keras.models.load_model(path, compile=False)
        # A compiled graph, as a deployment would call it (model.predict adds per-call overhead).
        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda x: forward(x).numpy()
    raise ValueError(f"unknown runtime {runtime!r}")


def latency(args: dict[str, Any]) -> dict[str, Any]:
    call = _runner(args["runtime"], args["path"], int(args.get("threads", 0)))
    rng = np.random.default_rng(0)
    found: dict[str, Any] = {}
    for batch in args.get("batches", [1, 32]):
        x = rng.random((batch, *args["input_shape"]), dtype=np.float32)
        for _ in range(int(args.get("warmup", 20))):
            call(x)
        p50s, p95s = [], []
        for _ in range(int(args.get("repeats", 5))):
            times = []
            for _ in range(int(args.get("runs", 50))):
                start = time.perf_counter()
                call(x)
                times.append((time.perf_counter() - start) * 1000)
            p50s.append(float(np.percentile(times, 50)))
            p95s.append(float(np.percentile(times, 95)))
        found[str(batch)] = {"p50": p50s, "p95": p95s}
    return {"latency": found}


def memory(args: dict[str, Any]) -> dict[str, Any]:
    call = _runner(args["runtime"], args["path"], int(args.get("threads", 0)))
    batch = max(args.get("batches", [32]))
    x = np.random.default_rng(0).random((batch, *args["input_shape"]), dtype=np.float32)
    loaded_peak = _status("VmHWM")
    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark to the current size
        reset = True
    except OSError:
        reset = False
    before = _status("VmRSS")
    for _ in range(20):
        call(x)
    peak = _status("VmHWM")
    return {
        "memory": {
            "process_peak_mb": max(loaded_peak, peak),
            "inference_mb": (peak - before) if reset else None,
            "batch": batch,
        }
    }


def main() -> None:
    args = json.loads(sys.argv[1])
    result = latency(args) if args["mode"] == "latency" else memory(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
