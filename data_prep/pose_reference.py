"""``--pose VIDEO``: the head motion of another video, tracked by prep before motion is made.

`avatar3d motion`, `drive` and `eval motion` follow a video's head poses. The command runs
the prep steps the poses come from (`REFERENCE_STEPS`, at 256 pixels) once, keeps the folder
under ``RUNS/pose-references`` by the video's name, size and time (an interrupted track
resumes), and hands the motion the prepared folder instead of the video.
"""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from avatar3d.motion.config import MotionConfig
from avatar3d.runtime import console
from avatar3d.subject import Subject
from data_prep.config import PrepConfig
from data_prep.pipeline import run_prep

REFERENCE_STEPS = ("decode", "landmarks", "face_fit")
"""The prep steps a pose reference needs: its head poses come from the face fit alone."""


def with_tracked_pose(cfg: MotionConfig) -> MotionConfig:
    """``cfg`` with a ``--pose`` video replaced by its tracked folder; other settings as they are."""
    video = Path(cfg.pose)
    if not video.is_file():
        return cfg
    stat = video.stat()
    key = hashlib.sha1(f"{video.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    out = Path(cfg.runs) / "pose-references" / f"{video.stem}-{key}"
    console.print(f"--pose {video}: tracking its head (kept in {out})")
    fps = Subject.load(cfg.subject).fps
    tracked = run_prep(PrepConfig(video=video, out=out, fps=fps, resolution=256, allow_short=True), REFERENCE_STEPS)
    return dataclasses.replace(cfg, pose=str(tracked))
