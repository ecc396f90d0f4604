#!/usr/bin/env bash
# Install what issuemine needs on a fresh Debian/Ubuntu machine, idempotently:
#   scripts/setup.sh          the package in .venv with the converters it re-runs snippets against
#                             (torch CPU, onnxruntime, onnxscript, tensorflow-cpu, tf2onnx) and
#                             bubblewrap (with libseccomp), the sandbox for untrusted snippets, and what label
#                             suggestions need (scikit-learn, spaCy with its lookup tables) and
#                             model quality (Adversarial Robustness Toolbox, coremltools) and
#                             differential testing (NNSmith)
#   scripts/setup.sh --dev    also the test tools and the services tests start (PostgreSQL)
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

apt_install() {
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

packages=()
command -v bwrap >/dev/null || packages+=(bubblewrap)
command -v setpriv >/dev/null || packages+=(util-linux)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || packages+=(libseccomp2)  # the sandbox's system-call filter
if [ "$dev" = 1 ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  packages+=(postgresql)  # tests start their own server on loopback
fi
if [ "${#packages[@]}" -gt 0 ]; then
  echo "setup: installing ${packages[*]}"
  apt_install "${packages[@]}"
fi

python=python3.11
command -v "$python" >/dev/null || python=python3
"$python" -c 'import sys; assert sys.version_info[:2] == (3, 11), "issuemine needs Python 3.11"'

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The CPU build of torch 2.13.0 lies on this machine's disk; asking for it by version first keeps
# pip from choosing a multi-GB CUDA build for the open range in pyproject.toml.
.venv/bin/python -m pip install -q "torch==2.13.0"
# onnx2torch, the ONNX -> PyTorch direction of difftest (issuemine/difftest/adapters/onnx2torch.py),
# without its torchvision requirement: the index's torchvision for this torch is a CUDA build that
# does not load beside the CPU torch, and resolving one would replace torch. onnx2torch needs
# torchvision only for its NMS and RoiAlign converters; the adapter stands a placeholder in.
.venv/bin/python -m pip install -q --no-deps "onnx2torch>=1.5,<2"
if [ "$dev" = 1 ]; then
  .venv/bin/python -m pip install -q -e ".[repro,suggest,quality,difftest,ray,dev]"
  # The stack of another era the re-run tests use (torch 1.13, TensorFlow 2.12 on Python 3.10),
  # built once and cached: a build that stopped half-way has no completion mark and is redone.
  # With NNSmith, so that a difftest campaign runs in it too (difftest run --env era-2023).
  .venv/bin/issuemine repro env build era-2023 --envs-file tests/repro/era-stack.toml --if-missing --difftest
else
  .venv/bin/python -m pip install -q -e ".[repro,suggest,quality,difftest,ray]"
fi
# onnx2tf, the ONNX -> TensorFlow / TFLite direction of difftest (issuemine/difftest/adapters/onnx2tf.py),
# without its requirements: it pins each one exactly (tensorflow==2.19.0, numpy==1.26.4, onnx==1.19.1, ...),
# which would replace this stack. What it imports comes beside it: its graph tools, tf_keras of the
# installed TensorFlow's release, and LiteRT's interpreter for the TFLite model it writes.
tf_release=$(.venv/bin/python -c 'from importlib.metadata import version; print(".".join(version("tensorflow-cpu").split(".")[:2]))')
.venv/bin/python -m pip install -q --no-deps "onnx2tf>=1.26,<2" "onnx-graphsurgeon>=0.5" "sng4onnx>=1.0" \
  "tf-keras~=${tf_release}.0" "ai-edge-litert>=1.2" "backports.strenum>=1.2"
