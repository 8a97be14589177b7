"""``avatar3d prep``: the resumable per-subject preprocessing pipeline.

Each step writes under temporary names and renames when done, then records its parameters
and code version in ``subject.json``. A run skips every leading step whose record matches;
from the first missing or changed one, it runs that step and all after it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from avatar3d.audio import features as audio_features
from avatar3d.audio.io import read_audio
from avatar3d.errors import BadInputError, OutputError
from avatar3d.face import signals as face_signals
from avatar3d.face.fit import FitConfig, fit_face
from avatar3d.files import atomic_path, writable_folder, write_png
from avatar3d.runtime import console, progress, progress_callback
from avatar3d.subject import MANIFEST, SCHEMA_VERSION, frame_name, read_frame, read_labels
from data_prep import decode, landmarks as landmark_step, masks as mask_step, preview
from data_prep.config import STEP_NAMES, PrepConfig

MIN_SECONDS = 5.0
MAX_GAP_SECONDS = 0.4  # gaps in face tracking up to this long are interpolated
MIN_DETECTED = 0.5  # below this fraction of frames with a face, the video is refused
VALIDATION_FRACTION = 0.1


@dataclass
class Context:
    """What the steps share: settings, the folder, the manifest being written."""

    config: PrepConfig
    root: Path
    manifest: dict
    warnings: list[str] = field(default_factory=list)  # of the step running now

    @property
    def num_frames(self) -> int:
        return int(self.manifest["num_frames"])

    def frames(self, name: str) -> Iterator[tuple[int, np.ndarray]]:
        """(index, RGB uint8 frame) over the stored frames, with a progress bar named ``name``."""
        for index in progress(range(self.num_frames), self.num_frames, name):
            yield index, read_frame(self.root, index)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        console.print(f"[yellow]warning:[/] {message}")

    def save_manifest(self) -> None:
        _write_json(self.root / MANIFEST, self.manifest)


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as partial:
        partial.write_text(json.dumps(data, indent=2))


def _save_npz(path: Path, **arrays) -> None:
    with atomic_path(path) as partial:
        np.savez_compressed(partial, **arrays)


def _replace_folder(staging: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)


def _staging(root: Path, name: str) -> Path:
    folder = root / f".{name}.partial"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return folder


# ---- steps ----------------------------------------------------------------------------------

def run_decode(ctx: Context) -> dict:
    cfg = ctx.config
    info = decode.probe(cfg.video)
    if info.duration < MIN_SECONDS and not cfg.allow_short:
        raise BadInputError(f"{cfg.video} lasts {info.duration:.1f} s; a subject needs at least {MIN_SECONDS:g} s "
                            "(pass --allow-short to prepare it anyway)")
    boxes, searched, crowded = decode.face_track(cfg.video, info)
    if not len(boxes):
        raise BadInputError(f"{cfg.video}: no face found in the {searched} frames searched (every "
                            f"{1 / decode.DETECT_HZ:.2f} s over {info.duration:.1f} s); is the face visible and lit?")
    if crowded > 0.1 * searched:
        ctx.warn(f"several faces in {crowded} of {searched} sampled frames: keeping the largest")
    crop = decode.choose_crop(boxes, info.width, info.height, cfg.face_fraction, cfg.face_height)
    staging = _staging(ctx.root, "frames")
    expected = int(math.floor(info.duration * cfg.fps + 1e-6))
    count = decode.write_frames(cfg.video, crop, cfg.fps, cfg.resolution, cfg.jpeg_quality, staging, expected)
    if count == 0:
        raise BadInputError(f"{cfg.video}: the video stream holds no frames")
    _replace_folder(staging, ctx.root / "frames")
    (ctx.root / "audio.wav").unlink(missing_ok=True)
    has_audio = decode.write_audio(cfg.video, count, cfg.fps, ctx.root / "audio.wav")
    if not has_audio:
        ctx.warn(f"{cfg.video} has no audio track: the visual parts are prepared, audio is marked absent")
    ctx.manifest.update(
        num_frames=count,
        source=dict(path=str(cfg.video), sha256=ctx.manifest["source"]["sha256"], fps=info.fps,
                    size=[info.width, info.height], duration=info.duration, has_audio=has_audio, codec=info.codec),
        crop=dict(x0=crop.x0, y0=crop.y0, size=crop.size, scale=cfg.resolution / crop.size),
    )
    return {"frames": count}


def run_landmarks(ctx: Context) -> dict:
    cfg = ctx.config
    raw, detected = landmark_step.track(ctx.frames("landmarks"), ctx.num_frames)
    if not detected.any():
        raise BadInputError(f"{cfg.video}: Face Mesh found no face in any of the {ctx.num_frames} cropped frames")
    max_gap = max(1, round(MAX_GAP_SECONDS * cfg.fps))
    long_gaps = [(a, b) for a, b in landmark_step.gaps(detected) if b - a + 1 > max_gap]
    described = ", ".join(f"{a}-{b}" for a, b in long_gaps[:10]) + (" ..." if len(long_gaps) > 10 else "")
    if detected.mean() < MIN_DETECTED:
        raise BadInputError(f"{cfg.video}: the face is lost in {100 * (1 - detected.mean()):.0f}% of frames "
                            f"(frames {described}); trim those stretches and run again")
    if long_gaps:
        ctx.warn(f"face lost for more than {MAX_GAP_SECONDS} s in frames {described}: those frames are marked untracked")
    filled, trusted = landmark_step.fill_gaps(raw, detected, max_gap)
    smoothed = landmark_step.smooth(filled, cfg.fps, cfg.resolution)
    _save_npz(ctx.root / "landmarks.npz", landmarks=smoothed[..., :2], depth=smoothed[..., 2],
              detected=trusted, raw=raw)
    return {"detected_fraction": float(detected.mean()), "untracked_ranges": [list(g) for g in long_gaps]}


def run_masks(ctx: Context) -> dict:
    with np.load(ctx.root / "landmarks.npz") as data:
        points = data["landmarks"]
    staging = _staging(ctx.root, "masks")

    def write(index: int, label: np.ndarray) -> None:
        write_png(staging / frame_name(index, ".png"), label)

    plate, seen, coverage = mask_step.segment(ctx.frames("masks"), points, ctx.config.resolution, write)
    _replace_folder(staging, ctx.root / "masks")
    for name, image in (("background.png", plate), ("background_coverage.png", seen.astype(np.uint8) * 255)):
        with atomic_path(ctx.root / name) as partial:
            write_png(partial, image)
    return {"coverage": coverage, "seen_fraction": float(seen.mean())}


def run_face_fit(ctx: Context) -> dict:
    with np.load(ctx.root / "landmarks.npz") as data:
        points, depth, trusted = data["landmarks"], data["depth"], data["detected"]
    with progress_callback("face fit") as report:
        fit = fit_face(points, depth, trusted, ctx.config.resolution, FitConfig(), report)
    model = fit.model
    _save_npz(ctx.root / "face_fit.npz", canonical=model.canonical, basis=model.basis, expression=fit.expression,
              rotation=fit.rotation, translation=fit.translation, intrinsics=fit.intrinsics,
              reprojection_px=fit.reprojection_px)
    ctx.manifest["intrinsics"] = fit.intrinsics.tolist()
    error = fit.reprojection_px[np.isfinite(fit.reprojection_px)]
    return {"reprojection_px_median": float(np.median(error)), "reprojection_px_p95": float(np.percentile(error, 95)),
            "num_expressions": int(model.num_expressions)}


def run_signals(ctx: Context) -> dict:
    with np.load(ctx.root / "landmarks.npz") as data:
        points, trusted = data["landmarks"], data["detected"]
    mouth, eyes = face_signals.mouth_opening(points), face_signals.eye_opening(points)
    _save_npz(ctx.root / "signals.npz", mouth_opening=mouth, eye_opening=eyes,
              mouth_normalised=_normalise(mouth, trusted, 5, 95), eye_normalised=_normalise(eyes, trusted, 5, 90))
    return {}


def _normalise(values: np.ndarray, trusted: np.ndarray, low: float, high: float) -> np.ndarray:
    """Maps the subject's own ``low``..``high`` percentiles (over trusted frames) to 0..1, clipped."""
    reference = values[trusted] if trusted.any() else values
    bottom, top = np.percentile(reference, [low, high])
    return np.clip((values - bottom) / max(top - bottom, 1e-6), 0, 1).astype(np.float32)


def run_audio_features(ctx: Context) -> dict:
    path = ctx.root / "audio_features.npz"
    path.unlink(missing_ok=True)
    if not ctx.manifest["source"].get("has_audio"):
        return {"present": False}
    samples, rate = read_audio(ctx.root / "audio.wav")
    with console.status("audio features"):
        features = audio_features.extract(samples, rate, ctx.num_frames, ctx.config.fps)
    _save_npz(path, **features)
    return {"present": True}


def run_preview(ctx: Context) -> dict:
    with np.load(ctx.root / "landmarks.npz") as data:
        detected = data["landmarks"]
    with np.load(ctx.root / "face_fit.npz") as data:
        fitted = preview.fitted_landmarks_px(dict(data))
    audio, rate = read_audio(ctx.root / "audio.wav") if ctx.manifest["source"].get("has_audio") else (None, 0)

    preview.write_preview(ctx.frames("preview"), lambda index: read_labels(ctx.root, index), detected, fitted, ctx.config.fps, audio, rate,
                          ctx.root / "preview.mp4")
    return {}


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Context], dict]
    params: tuple[str, ...]  # the PrepConfig fields its output depends on
    version: int = 1  # bump when the step's code changes its output


STEPS = (
    Step("decode", run_decode, ("fps", "resolution", "face_fraction", "face_height", "jpeg_quality", "allow_short")),
    Step("landmarks", run_landmarks, ()),
    Step("masks", run_masks, ()),
    Step("face_fit", run_face_fit, ()),
    Step("signals", run_signals, ()),
    Step("audio_features", run_audio_features, ()),
    Step("preview", run_preview, ()),
)
assert STEP_NAMES == tuple(step.name for step in STEPS)


# ---- the run --------------------------------------------------------------------------------

def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _open_folder(cfg: PrepConfig, source_hash: str) -> dict:
    """Creates or reopens the subject folder; returns the manifest to continue from."""
    root = writable_folder(cfg.out)
    path = root / MANIFEST
    fresh = {"schema_version": SCHEMA_VERSION, "source": {"sha256": source_hash}, "steps": {}}
    if path.exists():
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            manifest = {}
        same = manifest.get("source", {}).get("sha256") == source_hash
        if not same and cfg.force != "all":
            raise OutputError(f"{root} holds a subject prepared from another video; choose another --out "
                              "or pass --force all to replace it")
        if same and manifest.get("schema_version") == SCHEMA_VERSION:
            return manifest
        return fresh
    if any(not p.name.startswith(".") for p in root.iterdir()) and cfg.force != "all":
        raise OutputError(f"{root} is not empty and is not a subject folder; choose an empty --out "
                          "or pass --force all to write into it")
    return fresh


def _record(step: Step, cfg: PrepConfig) -> dict:
    settings = asdict(cfg)
    return {"params": {name: settings[name] for name in step.params}, "version": step.version}


def _finish(ctx: Context) -> None:
    """Split and stats: cheap, recomputed every run."""
    count = ctx.num_frames
    validation = max(1, math.ceil(VALIDATION_FRACTION * count)) if count > 1 else 0
    ctx.manifest["split"] = {"train": [0, count - validation], "val": [count - validation, count]}
    records = ctx.manifest["steps"]
    ctx.manifest["stats"] = {
        "num_frames": count,
        "fps": ctx.config.fps,
        "resolution": ctx.config.resolution,
        "landmarks.detected_fraction": records.get("landmarks", {}).get("detected_fraction"),
        "background.coverage": records.get("masks", {}).get("coverage"),
        "face_fit.reprojection_px_median": records.get("face_fit", {}).get("reprojection_px_median"),
        "face_fit.reprojection_px_p95": records.get("face_fit", {}).get("reprojection_px_p95"),
        "audio.present": ctx.manifest["source"].get("has_audio", False),
    }
    ctx.manifest["warnings"] = [w for record in records.values() for w in record.get("warnings", [])]
    ctx.manifest.update(fps=ctx.config.fps, resolution=ctx.config.resolution)


def run_prep(cfg: PrepConfig, steps: tuple[str, ...] = STEP_NAMES) -> Path:
    """Prepares ``cfg.video`` into ``cfg.out``, resuming an earlier run where it can.

    ``steps`` leaves the others out (a motion corpus needs no masks or preview); the folder
    is then only a partial subject.
    """
    if not cfg.video.is_file():
        raise BadInputError(f"{cfg.video}: no such file")
    started = time.monotonic()
    manifest = _open_folder(cfg, _sha256(cfg.video))
    ctx = Context(cfg, cfg.out, manifest)
    redo = False
    for step in (step for step in STEPS if step.name in steps):
        record = _record(step, cfg)
        previous = manifest["steps"].get(step.name)
        redo = redo or cfg.force in (step.name, "all") or previous is None or any(
            previous.get(key) != value for key, value in record.items())
        if not redo:
            console.print(f"{step.name}: done earlier, kept")
            continue
        # Forget this step's and later records first: a run killed mid-step must redo them all.
        later = STEP_NAMES[STEP_NAMES.index(step.name):]
        manifest["steps"] = {name: value for name, value in manifest["steps"].items() if name not in later}
        ctx.save_manifest()
        step_started, ctx.warnings = time.monotonic(), []
        extras = step.run(ctx)
        seconds = time.monotonic() - step_started
        manifest["steps"][step.name] = {**record, **extras, "warnings": ctx.warnings, "seconds": round(seconds, 2),
                                        "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        ctx.save_manifest()
        console.print(f"{step.name}: done in {seconds:.1f} s")
    _finish(ctx)
    ctx.save_manifest()
    console.print(f"prep: {ctx.num_frames} frames in {time.monotonic() - started:.0f} s -> {cfg.out}")
    return cfg.out
