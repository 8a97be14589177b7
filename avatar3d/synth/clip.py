"""``avatar3d synth``: a talking clip of the virtual actor with its exact ground truth."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import torch

from avatar3d import config as config_io
from avatar3d.audio.io import write_wav
from avatar3d.camera import project, rotation_matrix
from avatar3d.errors import BadArgumentError, OutputError
from avatar3d.face import signals
from avatar3d.face.model import FACE_WIDTH
from avatar3d.files import to_uint8, write_png
from avatar3d.render.sh import load_light
from avatar3d.rig import expression
from avatar3d.rig.actor import build_actor, intrinsics
from avatar3d.rig.speech import SENTENCES, Phoneme, Speech, synthesize
from avatar3d.rig.visemes import VISEME_NAMES, phoneme_at, viseme_track
from avatar3d.runtime import console, progress
from avatar3d.synth import motion
from avatar3d.synth.config import SynthConfig
from avatar3d.synth.scene import Pose, load_background, render_frame
from avatar3d.video import VideoWriter

LEAD_IN, LEAD_OUT = 0.3, 0.5  # seconds of silence around the speech
DEFAULT_SECONDS = 10.0


def _join(parts: list[Speech], pause_seconds: list[float]) -> Speech:
    """Concatenates speeches with silences before each, shifting phoneme positions."""
    rate = parts[0].sample_rate
    samples, phonemes, offset = [], [], 0
    for speech, pause in zip(parts, pause_seconds):
        silence = int(round(pause * rate))
        if silence:
            samples.append(np.zeros(silence, np.float32))
            phonemes.append(Phoneme("_", offset, offset + silence))
            offset += silence
        samples.append(speech.samples)
        phonemes += [Phoneme(p.label, p.start + offset, p.end + offset) for p in speech.phonemes]
        offset += len(speech.samples)
    return Speech(np.concatenate(samples), rate, phonemes)


def _fit_length(speech: Speech, num_samples: int) -> Speech:
    """Pads with silence or cuts to exactly ``num_samples``."""
    samples = np.zeros(num_samples, np.float32)
    kept = min(num_samples, len(speech.samples))
    samples[:kept] = speech.samples[:kept]
    phonemes = [Phoneme(p.label, p.start, min(p.end, num_samples)) for p in speech.phonemes if p.start < num_samples]
    end = phonemes[-1].end if phonemes else 0
    if end < num_samples:
        phonemes.append(Phoneme("_", end, num_samples))
    return Speech(samples, speech.sample_rate, phonemes)


def compose_speech(cfg: SynthConfig, rng: np.random.Generator) -> Speech:
    """The clip's soundtrack, exactly round(seconds * fps) frames long."""
    if cfg.text is not None:
        speech = _join([synthesize(cfg.text, cfg.voice, cfg.words_per_minute)], [LEAD_IN])
        needed = len(speech.samples) / speech.sample_rate + LEAD_OUT
        if cfg.seconds is not None and cfg.seconds < needed - LEAD_OUT:
            raise BadArgumentError(f"--text takes {needed - LEAD_OUT:.1f} s to say: raise --seconds or leave it unset")
        seconds = cfg.seconds or needed
    else:
        seconds = cfg.seconds or DEFAULT_SECONDS
        parts, pauses, total = [], [], 0.0
        for index in rng.permutation(len(SENTENCES)):
            pause = LEAD_IN if not parts else float(rng.uniform(0.3, 0.6))
            part = synthesize(SENTENCES[index], cfg.voice, cfg.words_per_minute)
            length = pause + len(part.samples) / part.sample_rate
            if parts and total + length > seconds - LEAD_OUT:
                break
            parts.append(part)
            pauses.append(pause)
            total += length
        speech = _join(parts, pauses)
    num_frames = max(1, int(round(seconds * cfg.fps)))
    return _fit_length(speech, int(round(num_frames / cfg.fps * speech.sample_rate)))


def _prepare_output(out: Path) -> Path:
    """Creates the output folder and a hidden staging folder inside it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        staging = out / ".synth-partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir()
    except OSError as error:
        raise OutputError(f"cannot write to {out}: {error.strerror}; choose a writable --out folder") from None
    return staging


def _save_png(path: Path, image: torch.Tensor) -> None:
    array = to_uint8(image.numpy())
    write_png(path, array.squeeze(-1) if array.shape[-1] == 1 else array)


def make_clip(cfg: SynthConfig) -> Path:
    """Renders the clip into ``cfg.out`` and returns the video's path.

    Everything is written into ``out/.synth-partial`` first and moved into place at the end,
    so a failed or interrupted run leaves ``out`` as it was.
    """
    started = time.monotonic()
    light = load_light(cfg.light)
    background = load_background(cfg.background, cfg.resolution)
    rng = np.random.default_rng(cfg.seed)
    speech = compose_speech(cfg, rng)
    staging = _prepare_output(cfg.out)
    try:
        truth = _render(cfg, speech, light, background, rng, staging)
        write_wav(staging / "audio.wav", speech.samples, speech.sample_rate)
        np.savez_compressed(staging / "truth.npz", **truth)
        config_io.save(cfg, staging / "config.yaml")
        for item in staging.iterdir():
            target = cfg.out / item.name
            if target.is_dir():
                shutil.rmtree(target)
            item.replace(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    console.print(f"synth: {len(truth['blink'])} frames, {len(speech.samples) / speech.sample_rate:.1f} s, "
                  f"in {time.monotonic() - started:.0f} s -> {cfg.out / 'video.mp4'}")
    return cfg.out / "video.mp4"


def _render(cfg: SynthConfig, speech: Speech, light: torch.Tensor, background: torch.Tensor,
            rng: np.random.Generator, staging: Path) -> dict[str, np.ndarray]:
    """Renders every frame into ``staging`` and returns the ground-truth arrays."""
    num_frames = int(round(len(speech.samples) / speech.sample_rate * cfg.fps))
    times = (np.arange(num_frames) + 0.5) / cfg.fps  # each frame shows the middle of its interval
    visemes = viseme_track(speech.phonemes, speech.sample_rate, times)
    blink = motion.blink_track(num_frames, cfg.fps, rng)
    head_angles, head_shift = motion.head_sway(num_frames, cfg.fps, rng)
    torso_angles = motion.torso_follow(head_angles, cfg.fps)

    actor = build_actor()
    K = intrinsics(cfg.resolution)
    for name in cfg.pass_list:
        (staging / "passes" / name).mkdir(parents=True)
    rest = actor.rest_translation
    landmarks_3d, landmarks_2d, rotations, translations = [], [], [], []
    with VideoWriter(staging / "video.mp4", cfg.fps, cfg.resolution, speech.samples, speech.sample_rate) as video:
        for index in progress(range(num_frames), num_frames, "synth"):
            landmarks = torch.as_tensor(expression.apply(actor.rig, visemes[index], blink[index]), dtype=torch.float32)
            head_rotation = rotation_matrix(*torch.as_tensor(head_angles[index]))
            head_translation = rest + torch.as_tensor(head_shift[index])
            pose = Pose(head_rotation, head_translation, rotation_matrix(*torch.as_tensor(torso_angles[index])),
                        rest + 0.5 * torch.as_tensor(head_shift[index]))
            frame = render_frame(actor, landmarks, pose, light, background, cfg.supersample)
            video.write(to_uint8(frame.rgb.numpy()))
            for name in cfg.pass_list:
                image = {"albedo": torch.cat([frame.albedo, frame.alpha], -1),
                         "normal": torch.cat([(frame.normal + 1) / 2, frame.alpha], -1),
                         "label": frame.label / 255}[name]
                _save_png(staging / "passes" / name / f"{index:06d}.png", image)
            landmarks_3d.append(landmarks)
            landmarks_2d.append(project(landmarks @ head_rotation.T + head_translation, K)[:, :2])
            rotations.append(head_rotation)
            translations.append(head_translation)

    landmarks_3d = torch.stack(landmarks_3d).numpy()
    return {
        "fps": np.float32(cfg.fps),
        "resolution": np.int32(cfg.resolution),
        "intrinsics": K.numpy(),
        "landmarks_2d": torch.stack(landmarks_2d).numpy(),
        "landmarks_3d": landmarks_3d,
        "rest_landmarks": actor.rig.rest.astype(np.float32),
        "rotation": torch.stack(rotations).numpy(),
        "translation": torch.stack(translations).numpy(),
        "head_angles": head_angles,
        "torso_angles": torso_angles,
        "visemes": visemes,
        "viseme_names": np.array(VISEME_NAMES),
        "mouth_opening": signals.mouth_opening(landmarks_3d).astype(np.float32),
        "eye_opening": signals.eye_opening(landmarks_3d).astype(np.float32),
        "blink": blink,
        "phoneme": np.array(phoneme_at(speech.phonemes, speech.sample_rate, times)),
        "phoneme_labels": np.array([p.label for p in speech.phonemes]),
        "phoneme_start": np.array([p.start for p in speech.phonemes], np.float64) / speech.sample_rate,
        "phoneme_end": np.array([p.end for p in speech.phonemes], np.float64) / speech.sample_rate,
        "sh": light.numpy(),
        "face_width": np.float32(FACE_WIDTH),
        "sample_rate": np.int32(speech.sample_rate),
    }
