"""``avatar3d eval relight``: a virtual-actor avatar relit, against the actor rendered under that light.

Each ``--truth`` folder is a clip that ``avatar3d synth`` rendered with the subject's clip
settings and seed under another ``--light``, with ``--passes albedo,normal``: the exact
frames, albedo and normals the avatar should produce. For the subject's held-out frames:

- ``lights.NAME.psnr_face`` / ``psnr``: the avatar rendered under that light (face crop
  as in ``eval render``, and the whole frame over the subject's plate) against the truth
  clip; ``baseline_psnr_face`` / ``baseline_psnr``: the avatar under its own light against
  the same truth. Albedo and light are known only up to a common scale, so one RGB gain
  per clip and rendering is fitted on the face crops first (least squares), for both.
- ``own_psnr_face`` / ``own_psnr``: the avatar under its own light against the subject's
  own frames, no gain (what ``eval render`` reports).
- ``albedo_psnr_face``: the albedo pass against the truth albedo, gain fitted likewise.
- ``normal_error_median_deg``: the median angle between the normal pass and the truth's
  on the face (inside the face landmarks' hull, where both cover the pixel).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from avatar3d import config as config_io
from avatar3d.errors import BadInputError
from avatar3d.render.avatar import find_run, load_avatar
from avatar3d.render.conditions import subject_conditions
from avatar3d.render.sh import load_light
from avatar3d.runtime import console, progress
from avatar3d.train import metrics
from avatar3d.train.config import RelightEvalConfig
from avatar3d.train.render_eval import held_out, held_out_frames
from avatar3d.video import SquareCrop, read_frames

SAME_CLIP = ("seed", "seconds", "text", "voice", "words_per_minute", "resolution", "fps", "background",
             "supersample")
"""Synth settings a truth clip must share with the subject's own clip (all but the light)."""


@dataclass
class TruthClip:
    """A synth clip under another light, framed like the subject (float32 images in [0, 1])."""

    folder: Path
    light: str
    frames: dict[int, np.ndarray]  # index -> (R, R, 3) rendered frame
    albedo: dict[int, np.ndarray]  # index -> (R, R, 3) premultiplied albedo
    normal: dict[int, np.ndarray]  # index -> (R, R, 3) unit camera-space normal, 0 off the actor

    @classmethod
    def read(cls, folder: Path, subject, indices: np.ndarray) -> "TruthClip":
        """Reads the frames ``indices`` of a truth clip, cropped and sized like the subject's."""
        settings = _synth_settings(folder)
        _check_same_clip(folder, settings, subject)
        crop, size = SquareCrop(*(int(subject.manifest["crop"][key]) for key in ("x0", "y0", "size"))), subject.resolution
        wanted = set(int(i) for i in indices)
        frames = {}
        for index, image in enumerate(read_frames(folder / "video.mp4")):
            if index in wanted:
                frames[index] = crop.apply(image, size).astype(np.float32) / 255
        missing = wanted - set(frames)
        if missing:
            raise BadInputError(f"{folder / 'video.mp4'} has no frame {min(missing)}: render the truth clip with "
                                "the subject's clip settings (the same --seconds)")
        albedo = {i: crop.apply(_read_pass(folder, "albedo", i), size)[..., :3] for i in wanted}
        normal = {i: _unit(crop.apply(_read_pass(folder, "normal", i), size)) for i in wanted}
        return cls(folder, str(settings["light"]), frames, albedo, normal)


def _synth_settings(folder: Path) -> dict:
    path = folder / "config.yaml"
    if not path.is_file():
        raise BadInputError(f"--truth {folder}: no config.yaml; make it with `avatar3d synth --out {folder} "
                            "--light NAME --passes albedo,normal` and the subject's clip settings")
    return config_io.load_yaml(path)


def _check_same_clip(folder: Path, settings: dict, subject) -> None:
    """The truth clip must be the subject's clip under another light (where the source's settings are known)."""
    source = Path(subject.manifest["source"]["path"]).parent / "config.yaml"
    if not source.is_file():
        return
    own = config_io.load_yaml(source)
    for key in SAME_CLIP:
        if own.get(key) != settings.get(key):
            raise BadInputError(f"--truth {folder}: {key} is {settings.get(key)!r}, the subject's clip has "
                                f"{own.get(key)!r}; render it with the same settings, only --light changed")


def _read_pass(folder: Path, name: str, index: int) -> np.ndarray:
    """(H, W, 3) float32 RGB in [0, 1] of a synth pass PNG (its alpha dropped)."""
    import cv2

    path = folder / "passes" / name / f"{index:06d}.png"
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise BadInputError(f"--truth {folder}: no {name} pass ({path}); render it with --passes albedo,normal")
    return cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB).astype(np.float32) / 255


def _unit(encoded: np.ndarray) -> np.ndarray:
    """Unit normals (H, W, 3) of a normal pass stored as (n + 1) / 2; 0 where nothing is stored."""
    normal = encoded * 2 - 1
    length = np.linalg.norm(normal, axis=-1, keepdims=True)
    return np.where(length > 0.5, normal / np.maximum(length, 1e-6), 0.0).astype(np.float32)


def fit_gain(colour: list[np.ndarray], behind: list[np.ndarray], truth: list[np.ndarray]) -> np.ndarray:
    """(3,) the RGB gain g minimising sum |g * colour + behind - truth|^2 over image crops.

    Args:
        colour: premultiplied avatar colour crops (h, w, 3) each.
        behind: what shows through the avatar there, (1 - alpha) * plate, same shapes.
        truth: the truth crops.
    """
    c = np.concatenate([x.reshape(-1, 3) for x in colour]).astype(np.float64)
    rest = np.concatenate([(t - b).reshape(-1, 3) for t, b in zip(truth, behind)]).astype(np.float64)
    return ((c * rest).sum(0) / np.maximum((c * c).sum(0), 1e-12)).astype(np.float32)


def _scores(colour, alpha, plate, truth, boxes, gain) -> tuple[float, float]:
    """Mean face-crop and full-frame PSNR of ``gain * colour + (1 - alpha) * plate`` against truth frames."""
    face, full = [], []
    for c, a, t, (x0, y0, x1, y1) in zip(colour, alpha, truth, boxes):
        image = np.clip(gain * c + (1 - a) * plate, 0, 1)
        full.append(metrics.image_psnr(image, t))
        face.append(metrics.image_psnr(image[y0:y1, x0:x1], t[y0:y1, x0:x1]))
    return float(np.mean(face)), float(np.mean(full))


def _crops(images, boxes):
    return [image[y0:y1, x0:x1] for image, (x0, y0, x1, y1) in zip(images, boxes)]


def _face_mask(landmarks_px: np.ndarray, size: int) -> np.ndarray:
    """(size, size) bool: inside the convex hull of a face's landmarks (478, 2)."""
    import cv2

    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(landmarks_px).astype(np.int32)), 1)
    return mask.astype(bool)


def evaluate_relight(cfg: RelightEvalConfig, device: torch.device) -> dict:
    """Scores the avatar relit against the truth clips; writes relight.json; returns the scores."""
    from avatar3d.files import atomic_path
    from avatar3d.subject import Subject

    subject = Subject.load(cfg.subject)
    run = find_run(subject.root, cfg.run, cfg.runs)
    indices = held_out_frames(subject, cfg.max_frames)
    clips = [TruthClip.read(folder, subject, indices) for folder in cfg.truth_folders()]
    lights = {clip.folder: load_light(clip.light) for clip in clips}
    avatar = load_avatar(run, device)
    conditions = subject_conditions(subject).to(device)
    plate = subject.background().astype(np.float32) / 255
    landmarks = subject.arrays("landmarks")["landmarks"]
    size = subject.resolution
    boxes = [metrics.face_box(landmarks[i], size) for i in indices]
    own = {key: [] for key in ("rgb", "alpha", "albedo", "normal")}
    relit = {clip.folder: {"rgb": [], "alpha": []} for clip in clips}
    for index in progress(indices, len(indices), "eval relight"):
        frame = held_out(conditions.select(int(index)))
        out = avatar.render_frame(frame)
        for key in own:
            own[key].append(out[key].cpu().numpy())
        for clip in clips:
            lit = avatar.render_frame(frame, light=lights[clip.folder])
            relit[clip.folder]["rgb"].append(lit["rgb"].cpu().numpy())
            relit[clip.folder]["alpha"].append(lit["alpha"].cpu().numpy())
    real = [subject.frame(int(i)).astype(np.float32) / 255 for i in indices]
    own_face, own_full = _scores(own["rgb"], own["alpha"], plate, real, boxes, np.ones(3, np.float32))
    result = {"frames": len(indices), "run": str(run), "own_psnr_face": own_face, "own_psnr": own_full, "lights": {}}
    for clip in clips:
        truth = [clip.frames[int(i)] for i in indices]
        scores = {}
        for name, rendered in (("", relit[clip.folder]), ("baseline_", own)):
            behind = [(1 - a) * plate for a in rendered["alpha"]]
            gain = fit_gain(_crops(rendered["rgb"], boxes), _crops(behind, boxes), _crops(truth, boxes))
            face, full = _scores(rendered["rgb"], rendered["alpha"], plate, truth, boxes, gain)
            scores.update({f"{name}psnr_face": face, f"{name}psnr": full, f"{name}gain": gain.tolist()})
        result["lights"][f"{clip.light} ({clip.folder.name})"] = scores
    first = clips[0]
    truth_albedo = [first.albedo[int(i)] for i in indices]
    gain = fit_gain(_crops(own["albedo"], boxes), [np.zeros_like(c) for c in _crops(truth_albedo, boxes)],
                    _crops(truth_albedo, boxes))
    result["albedo_psnr_face"] = float(np.mean([metrics.image_psnr(np.clip(gain * a, 0, 1), t) for a, t in
                                                zip(_crops(own["albedo"], boxes), _crops(truth_albedo, boxes))]))
    angles = []
    for n, index in enumerate(indices):
        truth_normal, rendered = first.normal[int(index)], own["normal"][n]
        on_face = (_face_mask(landmarks[index][:, :2], size) & (np.linalg.norm(truth_normal, axis=-1) > 0.5)
                   & (own["alpha"][n][..., 0] > 0.5))
        cosine = np.clip((truth_normal[on_face] * rendered[on_face]).sum(-1), -1, 1)
        angles.append(np.degrees(np.arccos(cosine)))
    result["normal_error_median_deg"] = float(np.median(np.concatenate(angles)))
    out_path = cfg.out or run / "relight.json"
    with atomic_path(out_path) as partial:
        partial.write_text(json.dumps(result, indent=1))
    _print(result, out_path)
    return result


def _print(result: dict, out_path: Path) -> None:
    from rich.table import Table

    table = Table(title=f"eval relight, {result['frames']} held-out frames (dB; own light: "
                        f"face {result['own_psnr_face']:.2f}, frame {result['own_psnr']:.2f})")
    for column in ("light", "relit face", "unrelit face", "relit frame", "unrelit frame"):
        table.add_column(column)
    for name, s in result["lights"].items():
        table.add_row(name, f"{s['psnr_face']:.2f}", f"{s['baseline_psnr_face']:.2f}", f"{s['psnr']:.2f}",
                      f"{s['baseline_psnr']:.2f}")
    console.print(table)
    console.print(f"albedo PSNR (face) {result['albedo_psnr_face']:.2f} dB, median normal error on the face "
                  f"{result['normal_error_median_deg']:.1f} deg -> {out_path}")
