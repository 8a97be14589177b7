"""``avatar3d render``: a subject's frames re-rendered by its avatar, optionally orbiting.

Each frame is rendered with its own fitted pose and expression. ``--orbit DEG`` swings
the camera around the head's vertical axis, from -DEG to +DEG and back over the frames,
to show the head is 3D; the torso is image-space and only valid from the filmed view, so
orbit frames show the head alone over the background. ``--light`` relights them (the clip's
own light by default; ``from-bg`` estimates one from the subject's plate).
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import torch

from avatar3d.errors import BadArgumentError
from avatar3d.render.avatar import find_run, load_avatar
from avatar3d.camera import rotation_matrix
from avatar3d.render.config import RenderFramesConfig
from avatar3d.render.conditions import Conditions, subject_conditions
from avatar3d.render.sh import resolve_light
from avatar3d.runtime import progress


def parse_frames(spec: str, subject) -> range:
    """Frame indices of ``A:B``, ``val`` or ``all``; BadArgumentError when out of range."""
    count = subject.num_frames
    if spec == "all":
        return range(count)
    if spec == "val":
        start, stop = subject.manifest["split"]["val"]
        return range(start, stop) if stop > start else range(count)
    first, sep, last = spec.partition(":")
    try:
        start = int(first) if first else 0
        stop = int(last) if last else count
    except ValueError:
        raise BadArgumentError(f"--frames {spec!r}: write A:B (e.g. 0:50), val or all") from None
    if not sep or not 0 <= start < stop <= count:
        raise BadArgumentError(f"--frames {spec!r}: need 0 <= A < B <= {count} (the subject's frame count)")
    return range(start, stop)


def orbit_pose(frame: Conditions, degrees: float) -> Conditions:
    """The frame seen from a camera turned ``degrees`` about the head's vertical axis."""
    turn = rotation_matrix(math.radians(degrees), 0.0, 0.0).to(frame.rotation)
    return replace(frame, rotation=frame.rotation @ turn)


def render_frames(cfg: RenderFramesConfig, device: torch.device) -> Path:
    """Renders the chosen frames into ``cfg.out`` (PNGs, then video.mp4); returns the folder."""
    from avatar3d.files import to_uint8, write_png
    from avatar3d.subject import Subject
    from avatar3d.video import VideoWriter

    subject = Subject.load(cfg.subject)
    indices = parse_frames(cfg.frames, subject)
    light = resolve_light(cfg.light, subject.background().astype("float32") / 255)
    avatar = load_avatar(find_run(subject.root, cfg.run, cfg.runs), device)
    conditions = subject_conditions(subject).to(device)
    size = cfg.resolution or subject.resolution
    plate = torch.from_numpy(subject.background()).float().div(255)
    if size != subject.resolution:
        plate = torch.nn.functional.interpolate(plate.permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                                                align_corners=False)[0].permute(1, 2, 0)
    cfg.out.mkdir(parents=True, exist_ok=True)
    with VideoWriter(cfg.out / "video.mp4", fps=round(subject.fps), size=size) as video:
        for n, index in enumerate(progress(indices, len(indices), "render")):
            frame = conditions.select(index)
            if cfg.orbit:
                frame = orbit_pose(frame, cfg.orbit * math.sin(2 * math.pi * n / max(len(indices), 1)))
            out = avatar.render_frame(frame, plate.to(device), size, with_torso=not cfg.orbit, light=light,
                                      exposure=cfg.exposure)
            image = to_uint8(out["rgb"].cpu().numpy())
            write_png(cfg.out / f"{index:06d}.png", image)
            video.write(image)
    return cfg.out
