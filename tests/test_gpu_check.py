"""benchmarks/gpu_check.sh: its dry run walks the GPU check's whole path on the CPU, tiny, in
an environment that lacks what the GPU machine lacks; bad input is one line and status 2."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"
NUMBER = re.compile(r"^[0-9][0-9,]*(\.[0-9]+)?$")


def run_check(*args: str, out: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OUT": str(out), "PYTHON": sys.executable}
    env.pop("AVATAR3D_BACKEND", None)
    # The limit only stops a hung run; the script's own stage limits are far below it.
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=900)


def table_rows(markdown: str) -> list[list[str]]:
    return [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in markdown.splitlines() if line.startswith("|") and not line.startswith("|---")]


def test_dry_run_fills_every_row_of_the_table(subject_dir, tmp_path):
    done = run_check("--dry-run", "--subject", str(subject_dir), out=tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    table = (tmp_path / "gpu_check.md").read_text()
    rows = {row[0]: row[1:] for row in table_rows(table)}
    speed = ["training rays/s"] + [f"render fps {size}² {part}" for size in (64, 128)
                                   for part in ("head", "head+torso+bg")]
    for label in speed:
        assert all(NUMBER.match(cell) for cell in rows[label]), (label, rows[label])
    for label in [f"{size}² {part}" for size in (64, 128) for part in ("head", "head+torso+bg")]:  # NeRF vs Gaussians
        assert all(NUMBER.match(cell) for cell in rows[label]), (label, rows[label])
    stages = ["setup", "kernel build (python -m cuda_ext)", "kernel tests (tests/cuda_ext)", "train render",
              "eval render (held-out frames)", "speed, default backend", "speed, AVATAR3D_BACKEND=torch",
              "train render --backend gaussians", "eval render, Gaussian head (held-out frames)",
              "speed, NeRF vs Gaussian head"]
    for label in stages:
        assert rows[label][0] in ("ok", "not present", "none carried"), (label, rows[label])
    for label in ("eval render (held-out frames)", "eval render, Gaussian head (held-out frames)"):
        assert re.search(r"PSNR \d+\.\d\d dB, face PSNR \d+\.\d\d dB", rows[label][2]), rows[label]
    assert "All stages passed." in table
    assert table in (tmp_path / "gpu_check.log").read_text()  # the log holds everything, the table too


def test_a_missing_subject_is_one_line_and_status_2(tmp_path):
    done = run_check("--subject", str(tmp_path / "nothing"), out=tmp_path / "out")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "make gpu-pack" in done.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_no_gpu_without_dry_run_is_one_line_and_status_2(subject_dir, tmp_path):
    done = run_check("--subject", str(subject_dir), out=tmp_path)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "--dry-run" in done.stderr


def test_an_unknown_option_is_status_2(tmp_path):
    done = run_check("--fast", out=tmp_path)
    assert done.returncode == 2 and "usage" in done.stderr
