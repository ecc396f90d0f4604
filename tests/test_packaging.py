"""A wheel built from the repository works outside the checkout, like any other package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_carries_its_data_and_runs_the_demo_outside_the_checkout(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    # No build isolation: the test must not reach the package index (setuptools is a dev dependency).
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(dist), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("issuemine-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for bundled in (
        "issuemine/data/converters/torch.onnx.toml",
        "issuemine/data/formats.toml",
        "issuemine/data/study-labels.csv",
        "issuemine/data/repro-examples/a_torchscript_passes.py",
        "issuemine/taxonomy/cause.toml",
        "issuemine/repro/shim/issuemine_shim.py",
        "issuemine/db/migrations/versions/0001_corpus_tables.py",
    ):
        assert bundled in names, bundled

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps", str(wheel)], check=True
    )
    # The dependencies come from the test's own environment (no index at test time); the package
    # itself only from the wheel: that folder holds issuemine as an editable finder, which a path
    # added by a .pth line does not activate.
    purelib = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(purelib, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ISSUEMINE_")}
    where = subprocess.run(
        [str(python), "-c", "import issuemine; print(issuemine.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
    ).stdout
    assert where.startswith(purelib), where
    done = subprocess.run(
        [str(venv / "bin" / "issuemine"), "demo", "--out", "demo"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "Table 8" in done.stdout and "148" in done.stdout  # node conversion, both converters
    assert (elsewhere / "demo" / "report" / "report.html").exists()
