"""``avatar3d eval render``: held-out frames rendered with their own pose and expression.

For each validation frame (never trained on; its appearance code is the training mean)
the avatar is rendered over the subject's plate and compared with the real frame:

- ``psnr``, ``ssim``: whole frame; ``psnr_face``, ``ssim_face``: square crop around the
  real frame's landmarks.
- ``lmd``: MediaPipe Face Mesh run on both the rendered and the real frame, mean distance
  of the lip landmarks, pixels at 512 (`avatar3d.train.metrics`); frames where either
  detection fails are left out and counted in ``lmd_frames``; None with ``--no-lmd``.
- ``face_depth_error``: mean |rendered depth - fitted face mesh's| on the face pixels the
  head covers, in face widths: how well the head's geometry follows the face (PSNR cannot
  see geometry from near-frontal cameras, an orbit or a mesh can).

Also writes a review video: real | rendered over |error| x 4 | head alpha, 2x2 per frame.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import numpy as np
import torch

from avatar3d.render.avatar import find_run, load_avatar
from avatar3d.render.conditions import subject_conditions
from avatar3d.runtime import console, progress
from avatar3d.train import metrics
from avatar3d.train.config import RenderEvalConfig


def evaluate_render(cfg: RenderEvalConfig, device: torch.device) -> dict:
    """Renders the validation frames, writes metrics.json (and the video); returns the metrics."""
    from avatar3d.files import atomic_path, to_uint8
    from avatar3d.subject import Subject

    subject = Subject.load(cfg.subject)
    run = find_run(subject.root, cfg.run, cfg.runs)
    avatar = load_avatar(run, device)
    conditions = subject_conditions(subject).to(device)
    frames = held_out_frames(subject, cfg.max_frames)
    plate = torch.from_numpy(subject.background()).float().div(255).to(device)
    landmarks = subject.arrays("landmarks")["landmarks"]
    size = subject.resolution
    scores = {key: [] for key in ("psnr", "ssim", "psnr_face", "ssim_face", "lmd", "face_depth_error")}
    with _video(cfg.video, run / "eval.mp4", subject.fps, 2 * size) as writer, _tracker(cfg.lmd) as tracker:
        for index in progress(frames, len(frames), "eval render"):
            frame = held_out(conditions.select(int(index)))
            out = avatar.render_frame(frame, plate)
            rendered = np.clip(out["rgb"].cpu().numpy(), 0, 1)
            real = subject.frame(int(index)).astype(np.float32) / 255
            x0, y0, x1, y1 = metrics.face_box(landmarks[index], size)
            scores["psnr"].append(metrics.image_psnr(rendered, real))
            scores["ssim"].append(metrics.ssim(rendered, real))
            scores["psnr_face"].append(metrics.image_psnr(rendered[y0:y1, x0:x1], real[y0:y1, x0:x1]))
            scores["ssim_face"].append(metrics.ssim(rendered[y0:y1, x0:x1], real[y0:y1, x0:x1]))
            depth_error = _face_depth_error(avatar, frame, out)
            if depth_error is not None:
                scores["face_depth_error"].append(depth_error)
            if tracker is not None:
                found_rendered, found_real = tracker(to_uint8(rendered)), tracker(to_uint8(real))
                if found_rendered is not None and found_real is not None:
                    scores["lmd"].append(metrics.mouth_landmark_distance(found_rendered[:, :2], found_real[:, :2],
                                                                         size))
            if cfg.video:
                error = np.abs(rendered - real) * 4
                alpha = np.repeat(out["head_alpha"].cpu().numpy(), 3, -1)
                grid = np.concatenate([np.concatenate([real, rendered], 1), np.concatenate([error, alpha], 1)], 0)
                writer.write(to_uint8(grid))
    result = {key: float(np.mean(values)) if values else None for key, values in scores.items()}
    result.update(frames=len(frames), lmd_frames=len(scores["lmd"]), run=str(run), resolution=size)
    out_path = cfg.out or run / "metrics.json"
    with atomic_path(out_path) as partial:
        partial.write_text(json.dumps(result, indent=1))
    lmd = "n/a" if result["lmd"] is None else f"{result['lmd']:.2f} px@512"
    depth = "n/a" if result["face_depth_error"] is None else f"{result['face_depth_error']:.2f} face widths"
    console.print(f"[bold]eval[/] {len(frames)} frames: PSNR {result['psnr']:.2f} dB (face {result['psnr_face']:.2f}), "
                  f"SSIM {result['ssim']:.3f} (face {result['ssim_face']:.3f}), LMD {lmd}, face depth error {depth} "
                  f"-> {out_path}")
    return result


def _video(enabled: bool, path, fps: float, size: int):
    """The review video's writer, or a null context when it is off (PyAV is then not needed)."""
    if not enabled:
        return contextlib.nullcontext()
    from avatar3d.video import VideoWriter

    return VideoWriter(path, fps=round(fps), size=size)


def _tracker(enabled: bool):
    """MediaPipe Face Mesh for the LMD score, or a null context (None) when it is off
    (MediaPipe is then not needed)."""
    if not enabled:
        return contextlib.nullcontext()
    from avatar3d.face.landmarks import FaceMeshTracker

    return FaceMeshTracker(static=True)


def held_out_frames(subject, max_frames: int | None = None) -> np.ndarray:
    """The subject's validation frames (its last frame if it has none), at most ``max_frames``
    of them spread evenly."""
    start, stop = subject.manifest["split"]["val"]
    frames = np.arange(start, stop) if stop > start else np.arange(subject.num_frames - 1, subject.num_frames)
    if max_frames is not None and len(frames) > max_frames:
        frames = frames[np.linspace(0, len(frames) - 1, max_frames).round().astype(int)]
    return frames


def held_out(frame):
    """A frame as the avatar sees frames it never trained on: the mean appearance, the clip's
    light without a per-frame change (frame id -1)."""
    return replace(frame, frame_ids=torch.full_like(frame.frame_ids, -1))


def _face_depth_error(avatar, frame, out: dict) -> float | None:
    """Mean |depth - fitted face mesh distance| in face widths over face pixels the head covers (None if none)."""
    from avatar3d.face.model import FACE_WIDTH
    from avatar3d.render.face_prior import face_distances
    from avatar3d.render.rays import frame_pixels

    size = avatar.resolution
    pixels = frame_pixels(size, size)[None].to(avatar.K.device)
    distance = face_distances(avatar.camera_to_head(frame), frame.landmarks, avatar.K, size, pixels)
    depth, head_alpha = out["depth"].reshape(-1), out["head_alpha"].reshape(-1)
    on_face = torch.isfinite(distance[0]) & (head_alpha > 0.5)
    return float((depth - distance[0])[on_face].abs().mean() / FACE_WIDTH) if bool(on_face.any()) else None
