"""``avatar3d demo`` (what ``make demo`` runs): the main job on the built-in virtual actor.

1. a virtual-actor clip with its exact ground truth; 2. the subject folder prepared from
it; 3. the avatar trained on it (fast preset, in what is left of the time budget); 4. its
scores on held-out frames; 5. a sentence the actor never said, spoken by another voice,
with its true mouth motion; 6. the avatar driven by it over a new background, relit by a
light estimated from that background (``--light from-bg``), with passes; 7. MediaPipe run again on the driven video, its mouth opening correlated with the
truth; 8. the head mesh; then ``summary.md`` and ``contact_sheet.png`` in the output folder.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatar3d.runtime import console

SENTENCE = "Bob and Pam bring the maps back by May."
"""The driving sentence: in none of the clip's sentences, with many lip closures (p, b, m)."""
SENTENCE_VOICE = "en-gb-f"  # another voice than the actor's


@dataclass
class DemoConfig:
    """Settings of ``avatar3d demo``."""

    out: Path = Path("demo")
    """Folder for every output of the demo."""
    seconds: float = 12.0
    """Length of the virtual actor's clip, seconds."""
    resolution: int = 256
    """Frame side in pixels."""
    seed: int = 0
    """Random seed of the clip."""
    minutes: float = 14.0
    """Time budget of the whole demo, minutes: training gets what the other stages leave."""
    train_minutes: float = 9.0
    """Most minutes the avatar's training may take."""


def discard_outdated_run(run: Path) -> None:
    """Removes the demo's avatar run if an older version trained it (its checkpoint format is
    not this version's), so that the demo trains afresh instead of failing to resume it."""
    from avatar3d.files import CHECKPOINT
    from avatar3d.render.avatar import checkpoint_format, load_checkpoint

    path = run / CHECKPOINT
    if not path.exists():
        return
    avatar = load_checkpoint(path)["avatar"]
    if avatar.get("format") != checkpoint_format(avatar):
        console.print(f"{run} was trained by an older version of avatar3d: training it afresh")
        shutil.rmtree(run)


def run_demo(cfg: DemoConfig, device) -> dict:
    """Runs every stage; returns the summary's numbers."""
    from avatar3d.synth.clip import make_clip
    from avatar3d.synth.config import SynthConfig
    from data_prep.config import PrepConfig
    from data_prep.pipeline import run_prep  # the demo fronts every stage, like the CLI

    from avatar3d import config as config_io
    from avatar3d.drive import drive
    from avatar3d.export.config import DriveConfig, MeshConfig
    from avatar3d.export.mesh import export_mesh
    from avatar3d.train.config import RenderEvalConfig, RenderTrainConfig
    from avatar3d.train.render import train_render
    from avatar3d.train.render_eval import evaluate_render

    stages = Stages()
    out = Path(cfg.out)
    with stages("virtual actor"):
        video = make_clip(SynthConfig(out=out / "actor", seconds=cfg.seconds, resolution=cfg.resolution,
                                      seed=cfg.seed, passes="albedo,normal,label"))
    with stages("prep"):
        subject = run_prep(config_io.build(PrepConfig, config_io.load_preset(PrepConfig),
                                           {"video": video, "out": out / "subject", "resolution": cfg.resolution}))
    # Minutes the stages after training take: eval 0.9, drive 3.3 (86 frames), mesh 0.3 on e8f1a1e's
    # machine; eval 1.2, drive 3.9, mesh 0.4 on a machine about 20 % slower (96f4215), where a
    # reserve of 4.5 made the demo 15.1 min. Machines differ from session to session.
    reserve = 5.0
    train_minutes = max(1.0, min(cfg.train_minutes, cfg.minutes - reserve - stages.minutes()))
    discard_outdated_run(out / "render")
    with stages("train render", f"{train_minutes:.1f} min budget"):
        train = config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig),
                                {"subject": subject, "run": out / "render", "max_minutes": train_minutes})
        run = train_render(train, device)
    with stages("eval render"):
        scores = evaluate_render(RenderEvalConfig(subject=subject, run=run, max_frames=25), device)
    with stages("new sentence"):
        truth_opening = new_sentence(out / "sentence")
    with stages("drive"):
        paths, motion = drive(DriveConfig(subject=subject, audio=out / "sentence" / "speech.wav",
                                          out=out / "drive" / "sentence.mp4", run=run,
                                          bg=str(background_image(out / "background.png")), light="from-bg",
                                          passes="alpha,depth,normal,albedo,shading"), device)
    with stages("lip sync check"):
        measured = measured_mouth_opening(paths["video"])
        count = min(len(measured), len(truth_opening))
        usable = np.isfinite(measured[:count])
        sync_r = float(np.corrcoef(measured[:count][usable], truth_opening[:count][usable])[0, 1])
    with stages("mesh"):
        mesh = export_mesh(MeshConfig(subject=subject, out=out / "head.ply", run=run), device)
    results = {"render": {key: scores[key] for key in ("psnr", "psnr_face", "ssim", "lmd")},
               "drive_mouth_corr": sync_r, "stage_minutes": stages.times, "total_minutes": stages.minutes()}
    sheet = contact_sheet(out, run, paths, motion, measured, truth_opening)
    write_summary(out, results, video, subject, run, paths, mesh, sheet)
    console.print(f"\n[bold]demo done[/] in {stages.minutes():.1f} min: mouth opening of the driven video vs "
                  f"truth r = {sync_r:.2f}; see {out / 'summary.md'}; look at it in a browser with "
                  f"`avatar3d view {subject} --run {run} --audio {out / 'sentence' / 'speech.wav'}`")
    return results


class Stages:
    """Numbered stage banners with their times: ``with stages("name"): ...``."""

    COUNT = 8

    def __init__(self):
        self.started = time.monotonic()
        self.times: dict[str, float] = {}

    def minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    @contextlib.contextmanager
    def __call__(self, name: str, detail: str = ""):
        console.rule(f"[bold]{len(self.times) + 1}/{self.COUNT} {name}" + (f" ({detail})" if detail else ""))
        began = time.monotonic()
        yield
        self.times[name] = round((time.monotonic() - began) / 60, 2)
        console.print(f"{name}: {self.times[name]:.1f} min (total {self.minutes():.1f})")


def new_sentence(folder: Path) -> np.ndarray:
    """Speaks `SENTENCE` with another voice into ``folder/speech.wav`` (and its truth into
    ``truth.npz``); returns the true mouth opening per frame at 25 fps."""
    from avatar3d.audio.io import write_wav
    from avatar3d.face import signals
    from avatar3d.motion import corpus

    spec = corpus.SyntheticSpec(text=SENTENCE, voice=SENTENCE_VOICE, words_per_minute=160, pitch=50,
                                face_scale=(1.0, 1.0, 1.0), articulation=1.0, pauses=(0.3, 0.4))
    samples, rate, landmarks, phonemes = corpus.speak(spec)
    opening = signals.mouth_opening(landmarks).astype(np.float32)
    folder.mkdir(parents=True, exist_ok=True)
    write_wav(folder / "speech.wav", samples, rate)
    np.savez(folder / "truth.npz", mouth_opening=opening, phoneme=phonemes, fps=np.float32(corpus.FPS))
    return opening


def background_image(path: Path) -> Path:
    """A new background for the driven video: scikit-image's photo of a rocket on its pad."""
    import skimage.data

    from avatar3d.files import write_png

    write_png(path, skimage.data.rocket())
    return path


def measured_mouth_opening(video: Path) -> np.ndarray:
    """Mouth opening per frame of a video by MediaPipe Face Mesh (NaN where no face is found)."""
    from avatar3d.face import signals
    from avatar3d.face.landmarks import FaceMeshTracker
    from avatar3d.video import read_frames

    values = []
    with FaceMeshTracker() as tracker:
        for frame in read_frames(video):
            points = tracker(frame)
            values.append(np.nan if points is None else float(signals.mouth_opening(points[None])[0]))
    return np.array(values, np.float32)


def contact_sheet(out: Path, run: Path, paths: dict[str, Path], motion: dict, measured: np.ndarray,
                  truth: np.ndarray) -> Path:
    """One PNG: real vs rendered held-out frames (the top row of the run's first and last
    eval.mp4 frames), a driven frame relit for its background and its albedo, shading and
    normal passes, and the mouth opening of the new sentence (truth, motion model, measured
    on the video)."""
    import cv2

    from avatar3d.export.passes import PNG_ENCODING
    from avatar3d.files import to_uint8, write_png
    from avatar3d.video import read_frames

    review = list(read_frames(run / "eval.mp4"))
    size = review[0].shape[0] // 2
    tiles = [_label(frame[:size, side * size: (side + 1) * size], name)
             for frame in (review[0], review[-1]) for side, name in enumerate(("real (held out)", "avatar"))]
    middle = len(measured) // 2
    driven = next(f for n, f in enumerate(read_frames(paths["video"])) if n == middle)
    passes = paths["passes"]

    def stored(name: str) -> np.ndarray:
        """A pass of the middle frame as float RGB (`avatar3d.export.passes.PNG_ENCODING`)."""
        image = cv2.imread(str(passes / name / f"{middle:06d}.png"), cv2.IMREAD_UNCHANGED)[..., ::-1]
        return image.astype(np.float32) / PNG_ENCODING[name]["scale"] - PNG_ENCODING[name]["offset"]

    driven_row = [_label(driven, "driven, lit from-bg"), _label(to_uint8(stored("albedo")), "albedo"),
                  _label(to_uint8(stored("shading") / 1.5), "shading"),
                  _label(to_uint8((stored("normal") + 1) / 2), "normal")]
    plot = _plot(size * 4, size, {"truth": (truth, (40, 160, 40)), "motion": (motion["mouth_opening"], (200, 80, 40)),
                                  "video": (measured, (40, 80, 220))})
    sheet = np.concatenate([np.concatenate(tiles, 1),
                            np.concatenate([cv2.resize(t, (size, size)) for t in driven_row], 1), plot], 0)
    path = out / "contact_sheet.png"
    write_png(path, sheet)
    return path


def _label(image: np.ndarray, text: str) -> np.ndarray:
    import cv2

    image = np.ascontiguousarray(image[..., :3])
    cv2.putText(image, text, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return image


def _plot(width: int, height: int, series: dict[str, tuple[np.ndarray, tuple]]) -> np.ndarray:
    """Curves scaled each to its own range (the shapes are compared, not the units), one colour each."""
    import cv2

    image = np.full((height, width, 3), 255, np.uint8)
    for n, (name, (values, colour)) in enumerate(series.items()):
        values = np.asarray(values, np.float64)
        finite = np.isfinite(values)
        if finite.sum() < 2:
            continue
        low, high = np.nanpercentile(values, [1, 99])
        y = height - 25 - (np.clip(values, low, high) - low) / max(high - low, 1e-9) * (height - 45)
        x = np.arange(len(values)) / max(len(values) - 1, 1) * (width - 20) + 10
        points = np.stack([x, y], 1)[finite].round().astype(np.int32)
        cv2.polylines(image, [points], False, colour, 2, cv2.LINE_AA)
        cv2.putText(image, name, (10 + 90 * n, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)
    cv2.putText(image, "mouth opening of the new sentence", (10, height - 6), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                (0, 0, 0), 1, cv2.LINE_AA)
    return image


def write_summary(out: Path, results: dict, video: Path, subject: Path, run: Path, paths: dict, mesh: Path,
                  sheet: Path) -> None:
    """``summary.md``: the numbers and where every output is (and ``summary.json``)."""
    render = {key: float("nan") if value is None else value for key, value in results["render"].items()}
    lines = [
        "# avatar3d demo", "",
        f"Finished in {results['total_minutes']:.1f} minutes.", "",
        "| measure | value |", "|---|---|",
        f"| held-out PSNR, full frame / face (dB) | {render['psnr']:.2f} / {render['psnr_face']:.2f} |",
        f"| held-out SSIM | {render['ssim']:.3f} |",
        f"| held-out lip landmark distance (px at 512²) | {render['lmd']:.2f} |",
        f"| new sentence: mouth opening on the driven video vs truth (r) | {results['drive_mouth_corr']:.2f} |", "",
        "| output | where |", "|---|---|",
        f"| virtual-actor clip and its truth | `{video}`, `{video.parent / 'truth.npz'}` |",
        f"| subject folder (check its preview) | `{subject}`, `{subject / 'preview.mp4'}` |",
        f"| avatar run (TensorBoard, eval video) | `{run}` |",
        f"| new sentence and its truth | `{out / 'sentence'}` |",
        *[f"| driven {name} | `{path}` |" for name, path in paths.items()],
        f"| head mesh | `{mesh}` |",
        f"| contact sheet | `{sheet}` |", "",
        "Stage times (minutes): " + ", ".join(f"{k} {v:.1f}" for k, v in results["stage_minutes"].items()), "",
        "To orbit the avatar, play the sentence and relight it in a browser (docs/viewer.md):", "",
        f"    avatar3d view {subject} --run {run} --audio {out / 'sentence' / 'speech.wav'}", "",
        f"![contact sheet]({sheet.name})", "",
    ]
    (out / "summary.md").write_text("\n".join(lines))
    (out / "summary.json").write_text(json.dumps(results, indent=2) + "\n")
