"""The GPU check's table (`benchmarks/gpu_check.sh`), in Markdown, from its work folder.

Usage::

    python benchmarks/gpu_table.py WORK --sizes 256,512

WORK holds ``stages.tsv`` (stage, result, seconds per line), each stage's output as
``STAGE.out``, the two benchmark files ``bench-kernels.json`` and ``bench-torch.json``
(`benchmarks/render.py --json`), ``metrics.json`` (`avatar3d eval render`), the training
run ``run/`` and ``train_minutes``; for the Gaussian head ``metrics-gaussians.json``, the run
``gaussians/`` and ``bench-backends.json`` (`benchmarks/backends.py --json`). A number that
is missing is written FAILED.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

FAILED = "FAILED"
LABELS = {
    "wheels": "wheels (.gpu/wheels)",
    "setup": "setup",
    "subject": "subject (dry run: made here)",
    "kernels": "kernel build (python -m cuda_ext)",
    "tests": "kernel tests (tests/cuda_ext)",
    "train": "train render",
    "eval": "eval render (held-out frames)",
    "bench-kernels": "speed, default backend",
    "bench-torch": "speed, AVATAR3D_BACKEND=torch",
    "train-gaussians": "train render --backend gaussians",
    "eval-gaussians": "eval render, Gaussian head (held-out frames)",
    "bench-backends": "speed, NeRF vs Gaussian head",
}
RUNS = {"train": "run", "train-gaussians": "gaussians"}
METRICS = {"eval": "metrics.json", "eval-gaussians": "metrics-gaussians.json"}
BACKENDS = ("kernels", "torch")


def _json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def speed_rows(work: Path, sizes: list[int]) -> list[list[str]]:
    """Rows (measurement, kernels, torch, ratio) of the two benchmark files."""
    bench = {name: _json(work / f"bench-{name}.json") for name in BACKENDS}

    def value(name: str, *keys: str) -> float | None:
        found = bench[name]
        for key in keys:
            found = found.get(key) if isinstance(found, dict) else None
        return found if isinstance(found, (int, float)) else None

    measurements = [("training rays/s", ("training_rays_per_s",), "{:,.0f}")]
    for size in sizes:
        for part in ("head", "head+torso+bg"):
            measurements.append((f"render fps {size}² {part}", ("render_fps", str(size), part), "{:,.1f}"))
    rows = []
    for label, keys, form in measurements:
        kernels, torch = value("kernels", *keys), value("torch", *keys)
        ratio = f"{kernels / torch:.2f}" if kernels is not None and torch else FAILED
        rows.append([label, FAILED if kernels is None else form.format(kernels),
                     FAILED if torch is None else form.format(torch), ratio])
    return rows


def backend_rows(work: Path, sizes: list[int]) -> list[list[str]]:
    """Rows (frame, NeRF fps, Gaussian fps, ratio) of ``bench-backends.json``."""
    fps = (_json(work / "bench-backends.json") or {}).get("render_fps", {})
    rows = []
    for size in sizes:
        for part in ("head", "head+torso+bg"):
            nerf, gaussians = (fps.get(name, {}).get(str(size), {}).get(part) for name in ("nerf", "gaussians"))
            ratio = f"{gaussians / nerf:.1f}" if nerf and gaussians is not None else FAILED
            rows.append([f"{size}² {part}", FAILED if nerf is None else f"{nerf:,.1f}",
                         FAILED if gaussians is None else f"{gaussians:,.1f}", ratio])
    return rows


def stage_detail(work: Path, key: str) -> str:
    """One line on what a stage found."""
    out = _text(work / f"{key}.out")
    if key == "setup":
        found = re.search(r"^device: (.*)$", out, re.M)
        return found.group(1) if found else ""
    if key == "wheels":
        return ", ".join(sorted(path.name.removesuffix(".dist-info").replace("-", " ")
                                for path in (work / "site").glob("*.dist-info")))
    if key == "kernels":
        return "; ".join(line.strip() for line in out.splitlines() if re.match(r"\s*(cpu|cuda)\s*:", line))
    if key == "tests":
        lines = [line.strip() for line in out.splitlines()
                 if re.search(r"\b(passed|failed|error|errors|skipped|collected|no tests ran)\b", line)]
        return lines[-1] if lines else ""
    if key in RUNS:
        minutes = _text(work / "train_minutes").strip() if key == "train" else ""
        curve = _json(work / RUNS[key] / "curve.json") or []
        steps = {entry["stage"]: entry["step"] for entry in curve if isinstance(entry, dict) and "stage" in entry}
        done = ", ".join(f"{steps[stage]} {stage} steps" for stage in ("head", "torso") if stage in steps)
        return "; ".join(part for part in (f"budget {minutes} min" if minutes else "", done) if part)
    if key in METRICS:
        metrics = _json(work / METRICS[key])
        if not metrics or metrics.get("psnr") is None:
            return ""
        return (f"PSNR {metrics['psnr']:.2f} dB, face PSNR {metrics['psnr_face']:.2f} dB "
                f"({metrics.get('frames')} frames at {metrics.get('resolution')}²)")
    if key == "bench-backends":
        bench = _json(work / "bench-backends.json")
        return f"on {bench['device']}" if bench else ""
    if key.startswith("bench-"):
        bench = _json(work / f"{key}.json")
        return f"{bench['backend']} on {bench['device']}, run {bench['run'] or 'untrained'}" if bench else ""
    return ""


def table(work: Path, sizes: list[int]) -> str:
    stages = [line.split("\t") for line in _text(work / "stages.tsv").splitlines() if line.strip()]
    header = re.search(r"^device: (.*)$", _text(work / "setup.out"), re.M)
    lines = ["# GPU check", "", f"Device: {header.group(1) if header else 'unknown (setup failed)'}.", "",
             "| measurement | default backend (kernels) | PyTorch reference | kernels / torch |",
             "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in speed_rows(work, sizes)]
    lines += ["", "| render fps, default backend | NeRF head | Gaussian head | Gaussians / NeRF |", "|---|---:|---:|---:|"]
    lines += ["| " + " | ".join(row) + " |" for row in backend_rows(work, sizes)]
    lines += ["", "| stage | result | seconds | detail |", "|---|---|---:|---|"]
    for key, result, seconds in stages:
        lines.append(f"| {LABELS.get(key, key)} | {result} | {seconds} | {stage_detail(work, key)} |")
    failed = [LABELS.get(key, key) for key, result, _ in stages if result.startswith(FAILED)]
    lines += ["", f"{FAILED}: {', '.join(failed)}" if failed else "All stages passed."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path)
    parser.add_argument("--sizes", default="256,512", help="rendered frame sides, comma-separated")
    args = parser.parse_args()
    print(table(args.work, [int(size) for size in args.sizes.split(",")]), end="")


if __name__ == "__main__":
    main()
