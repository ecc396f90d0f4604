"""Job runners the tests hand to the worker pool: faults a real converter or runtime can have, and
conversions broken on purpose. They run in worker processes, so they live in an importable module."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from issuemine.difftest.execute import run_job


def faulty(job: dict[str, Any]) -> dict[str, Any]:
    fault = job.get("fault")
    if fault == "abort":
        os.abort()  # SIGABRT, as a failed C++ assert in a runtime does
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        time.sleep(3600)
    if fault == "exit":
        os._exit(3)
    if fault == "memory":  # a model too big for the machine: 2 GiB at once
        import numpy as np

        try:
            np.ones(2**31, dtype=np.uint8).sum()
        except MemoryError as exc:
            return {"seed": job["seed"], "nodes": job["nodes"], "outcome": "framework-failure", "error": str(exc)}
    return {"seed": job["seed"], "nodes": job["nodes"], "outcome": "success", "durations": {}, "pid": os.getpid()}


def relu_as_abs(job: dict[str, Any]) -> dict[str, Any]:
    """The TorchScript exporter with a custom symbolic that turns ReLU into Abs: a wrong conversion."""
    import torch

    torch.onnx.register_custom_op_symbolic("aten::relu", lambda g, x: g.op("Abs", x), 9)
    return run_job(job)


def relu_raises(job: dict[str, Any]) -> dict[str, Any]:
    """A converter that crashes on ReLU (a symbolic that raises)."""
    import torch

    def broken(g: Any, x: Any) -> Any:
        raise RuntimeError("symbolic for relu exploded on purpose")

    torch.onnx.register_custom_op_symbolic("aten::relu", broken, 9)
    return run_job(job)
