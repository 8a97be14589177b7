"""Preprocessing speed and memory: frames/s per step and peak RSS of ``avatar3d prep``.

    .venv/bin/python benchmarks/prep.py [--seconds 60] [--resolution 512] [--video FILE]

Without --video, a virtual-actor clip of --seconds is rendered first (at 256², not timed).
Target: the whole prep at >= 25 frames/s at 512² on a 2-core CPU, peak RSS <= 2 GB whatever
the video's length.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from avatar3d.runtime import hide_native_logs, set_quiet
from avatar3d.subject import Subject
from data_prep.config import PrepConfig
from data_prep.pipeline import run_prep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--video", type=Path)
    args = parser.parse_args()
    set_quiet(True)
    hide_native_logs()
    with tempfile.TemporaryDirectory() as scratch:
        video = args.video
        if video is None:  # rendered in another process, so the RSS below is prep's own
            video = Path(scratch) / "actor" / "video.mp4"
            subprocess.run([sys.executable, "-m", "avatar3d.cli", "--quiet", "synth", "--out", str(video.parent),
                            "--seconds", str(args.seconds)], check=True)
        started = time.perf_counter()
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        subject = Subject.load(run_prep(PrepConfig(video=video, out=Path(scratch) / "subject",
                                                   resolution=args.resolution, allow_short=True)))
        total = time.perf_counter() - started
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    frames = subject.num_frames
    print(f"{video.name}: {frames} frames at {args.resolution}², peak RSS {peak:.0f} MB "
          f"(before prep {rss_before:.0f} MB)")
    print(f"{'step':>15} | {'seconds':>8} | {'frames/s':>9}")
    for name, record in subject.manifest["steps"].items():
        print(f"{name:>15} | {record['seconds']:>8.1f} | {frames / max(record['seconds'], 1e-9):>9.1f}")
    print(f"{'total':>15} | {total:>8.1f} | {frames / total:>9.1f}")


if __name__ == "__main__":
    main()
