"""``avatar3d motion``: per-frame expression, landmarks, blinks and head pose for new speech.

speech -> features -> VAE (codes) -> calibration into the subject's code space
(`avatar3d.motion.calibrate`) -> LLE onto the subject's own expressions -> mouth amplitude
-> the subject's landmarks; eyelids from the subject's own frames with the
wanted eye opening (blinks); head pose from the subject's poses (looped, still, generated)
or another subject's.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from avatar3d.camera import pose_vectors, rotation_matrix
from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.face import signals
from avatar3d.face import topology as topo
from avatar3d.face.closure import press_lips
from avatar3d.face.model import fitted_landmarks
from avatar3d.files import newest_finished_run, runs_folder
from avatar3d.motion import pose_blink
from avatar3d.motion.basis import displacements, to_landmarks
from avatar3d.motion.calibrate import CodeMap, fit_code_map
from avatar3d.motion.config import MotionConfig
from avatar3d.motion.features import MEL_BINS, clip_features, subject_features
from avatar3d.motion.lle import LLEProjector
from avatar3d.motion.model import MotionModel
from avatar3d.runtime import console

SILENT_RMS = 1e-3  # below this (about -60 dBFS) the audio holds no speech
MIN_VOICED = 0.03  # speech is voiced a third of the time or more; noise is not
MIN_PHONES = 0.2  # ... and the phone recogniser hears phones, not silence, in most of it; not in a hum
MODEL = "motion.pt"
TRANSCRIPT_WEIGHT = 0.7
"""Share of the mouth rig's codes in transcript-guided motion (the model's audio-driven codes
keep the rest: loudness, emphasis)."""
DEFAULT_MODEL = Path(__file__).with_name("default_motion.pt")
"""The shipped model, trained on the synthetic corpus (the command is in docs/motion.md)."""


def load_speech(path: Path) -> tuple[np.ndarray, int]:
    """(N,) mono float32 samples and their rate from any file PyAV reads (`avatar3d.audio.io.read_audio`).

    Raises:
        BadInputError: missing, unreadable, without an audio stream, or empty.
    """
    from avatar3d.audio.io import read_audio

    samples, rate = read_audio(path)
    if len(samples) < rate // 25:
        raise BadInputError(f"--audio {path}: the audio is empty (under one frame long)")
    return samples, rate


def find_motion_model(checkpoint: Path | None, runs: Path, subject: Path | None = None) -> Path:
    """``checkpoint`` if given, else the newest finished model adapted to ``subject``, else the
    newest finished corpus-trained one (`avatar3d.files.newest_finished_run` of stage
    ``motion``), else the model shipped in the package."""
    if checkpoint is not None:
        return Path(checkpoint)
    for owner in ([subject] if subject is not None else []) + [None]:
        run = newest_finished_run(runs, "motion", owner)
        if run is not None:
            return run / MODEL
    if DEFAULT_MODEL.exists():
        return DEFAULT_MODEL
    raise BadInputError(f"no motion model under {runs_folder(runs, 'motion')}; run `avatar3d train motion` "
                        "first or pass --motion")


REQUIRED_STEPS = ("face_fit", "signals", "audio_features")
"""Prep steps driven motion reads (neutral face, poses and expressions, eye signal, the speech's features)."""


@dataclass
class SubjectMotion:
    """What a subject contributes to driven motion, from its prep outputs (training frames)."""

    neutral: np.ndarray  # (478, 3) head frame
    landmarks: np.ndarray  # (N, 478, 3) fitted landmarks of the training frames
    poses: np.ndarray  # (N, 6) yaw, pitch, roll (radians), translation
    eye: np.ndarray  # (N,) normalised eye opening
    audio: np.ndarray  # (2N, AUDIO_DIMS) features of the training frames' speech
    fps: float

    @classmethod
    def load(cls, root: Path) -> "SubjectMotion":
        from avatar3d.subject import Subject

        subject = Subject.load(root)
        subject.require_steps(REQUIRED_STEPS, "drive motion")
        train = slice(*subject.manifest["split"]["train"])
        fit = subject.arrays("face_fit")
        return cls(fit["canonical"], fitted_landmarks(fit)[train], fitted_poses(fit)[train],
                   subject.arrays("signals")["eye_normalised"][train], subject_features(subject, "train"),
                   float(subject.fps))

    @cached_property
    def displacement(self) -> np.ndarray:
        """(N, 478, 3) the training frames' landmark displacements from the neutral face."""
        return displacements(self.landmarks, self.neutral)

    def codes(self, model: MotionModel) -> np.ndarray:
        """(N, D) the training frames' expression codes in ``model``'s basis."""
        return model.basis.encode(self.displacement)


def subject_code_map(model: MotionModel, subject: SubjectMotion, bank: np.ndarray) -> CodeMap:
    """The map from the model's codes to the subject's ``bank`` (N, D), fitted on the subject's
    own speech; the identity where its clip holds none."""
    if not heard_as_speech(subject.audio):
        return CodeMap.identity(bank.shape[1])
    return fit_code_map(model.basis.encode(model.generate(subject.audio, subject.neutral)), bank)


def mouth_points(neutral: np.ndarray) -> np.ndarray:
    """(478,) bool: landmarks below the nose (lips, chin, jaw) of a neutral face."""
    return neutral[:, 1] < neutral[topo.NOSE_TIP, 1] - 0.05 * signals.face_width(neutral)


def eye_points(neutral: np.ndarray) -> np.ndarray:
    """(478,) bool: eyelids, irises and their surroundings within 0.13 face widths of an eye."""
    centres = np.stack([neutral[list(topo.RIGHT_UPPER_LID + topo.RIGHT_LOWER_LID)].mean(0),
                        neutral[list(topo.LEFT_UPPER_LID + topo.LEFT_LOWER_LID)].mean(0)])
    distance = np.linalg.norm(neutral[:, None] - centres[None], axis=-1).min(1)
    return (distance < 0.13 * signals.face_width(neutral)) & ~mouth_points(neutral)


def with_eyes(displacement: np.ndarray, eye: np.ndarray, subject: SubjectMotion) -> np.ndarray:
    """Copies the eye region from the subject's training frame whose eye opening is nearest
    each wanted value (T,): the subject's own blinks, lids and creases."""
    own = subject.displacement
    order = np.argsort(subject.eye)
    nearest = order[np.clip(np.searchsorted(subject.eye[order], eye), 0, len(order) - 1)]
    region = eye_points(subject.neutral)
    out = displacement.copy()
    out[:, region] = own[nearest][:, region]
    return out


def make_poses(cfg: MotionConfig, subject: SubjectMotion, num_frames: int, energy: np.ndarray) -> np.ndarray:
    """(T, 6) head poses as the --pose setting asks."""
    if cfg.pose in pose_blink.POSE_MODES:
        return pose_blink.make_poses(cfg.pose, subject.poses, num_frames, subject.fps, cfg.seed, energy)
    reference = Path(cfg.pose)
    if reference.is_file():  # the avatar3d command tracks a video first (data_prep.pose_reference)
        raise BadArgumentError(f"--pose {cfg.pose}: a video must be tracked first; give the folder "
                               f"`avatar3d prep {cfg.pose} --out DIR` makes, or run the avatar3d command")
    if reference.is_dir():
        return pose_blink.pose_from_reference(reference_poses(reference), subject.poses, num_frames)
    raise BadArgumentError(f"--pose {cfg.pose!r}: use {', '.join(pose_blink.POSE_MODES)}, a video or a prepared "
                           "subject folder")


def fitted_poses(fit: dict[str, np.ndarray]) -> np.ndarray:
    """(T, 6) head poses (`avatar3d.camera.pose_vectors`) of every frame of a face fit's arrays."""
    return pose_vectors(torch.from_numpy(fit["rotation"]).float(), torch.from_numpy(fit["translation"]).float()).numpy()


def reference_poses(root: Path) -> np.ndarray:
    """(M, 6) head poses of every frame of a prepared folder (a subject, or a tracked video)."""
    from avatar3d.subject import Subject

    subject = Subject.load(root)
    subject.require_steps(("face_fit",), "a --pose reference")
    return fitted_poses(subject.arrays("face_fit"))


def is_speech(samples: np.ndarray, features: np.ndarray) -> bool:
    """Whether audio holds speech: loud enough, voiced often enough and heard as phones.

    Music passes this test (it is voiced and phone-like): it drives the mouth as speech would.
    """
    return float(np.sqrt(np.mean(samples**2))) >= SILENT_RMS and heard_as_speech(features)


def heard_as_speech(features: np.ndarray) -> bool:
    """Whether (2T, AUDIO_DIMS) features are voiced often enough and heard as phones."""
    voiced = float(features[:, MEL_BINS + 1].mean()) >= MIN_VOICED
    phones = float((features[:, MEL_BINS + 3] < 0.5).mean()) >= MIN_PHONES  # column MEL_BINS + 3: P(silence)
    return voiced and phones


def transcript_codes(model: MotionModel, subject: SubjectMotion, phonemes: list, sample_rate: int,
                     num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The mouth rig speaking aligned phonemes (`avatar3d.motion.transcript`) on the subject's
    neutral face: (T, D) its codes in the model's basis (what a model trained on the rig
    would say) and (T, 5) its viseme controls (`avatar3d.rig.visemes.VISEME_NAMES`)."""
    from avatar3d.motion.corpus import rig_motion

    landmarks, visemes, _ = rig_motion(phonemes, sample_rate, num_frames, subject.fps, subject.neutral)
    return model.basis.encode(displacements(landmarks, subject.neutral)), visemes


def generate_motion(cfg: MotionConfig, speech: tuple[np.ndarray, int] | None = None, phonemes: list | None = None
                    ) -> tuple[dict[str, np.ndarray], np.ndarray, SubjectMotion, MotionModel]:
    """The motion arrays (one row per video frame at the subject's fps), and what made them:
    the audio features (2T, AUDIO_DIMS), the subject and the model.

    ``speech``: ``cfg.audio`` already decoded by `load_speech`, for callers that also need
    the samples (``drive`` puts them in the video); decoded here when None. ``phonemes``:
    the transcript already aligned to it (`avatar3d.motion.transcript.aligned_phonemes`);
    aligned here from ``cfg.text`` or ``cfg.text_file`` when None. With a transcript the
    model's codes are blended with the rig's (`transcript_codes`) and the rig's lip press is
    applied to the result; without one, the model's own (`MotionModel.lip_press`).
    """
    from avatar3d.motion.transcript import aligned_phonemes, read_transcript

    subject = SubjectMotion.load(cfg.subject)
    model = MotionModel.load(find_motion_model(cfg.motion, cfg.runs, cfg.subject))
    samples, rate = speech or load_speech(cfg.audio)
    text = read_transcript(cfg.text, cfg.text_file)
    if phonemes is None and text is not None:
        phonemes = aligned_phonemes(samples, rate, text, str(cfg.audio))
    num_frames = max(1, int(round(len(samples) / rate * subject.fps)))
    features = clip_features(samples, rate, num_frames, subject.fps)
    bank = subject.codes(model)
    if is_speech(samples, features):
        predicted = model.basis.encode(model.generate(features, subject.neutral, cfg.temperature, cfg.seed,
                                                      press=phonemes is None))
        if phonemes is not None:
            rig, visemes = transcript_codes(model, subject, phonemes, rate, num_frames)
            # The rig's share rises to 1 where it closes the lips (p/b/m) or tucks the lower
            # lip (f/v): the shapes the audio is least sure of.
            weight = TRANSCRIPT_WEIGHT + (1 - TRANSCRIPT_WEIGHT) * visemes[:, 3:].max(1)
            predicted = predicted + weight[:, None] * (rig - predicted)
            press = visemes[:, 3]  # the rig's lip press: exact where the transcript is
        else:
            press = model.lip_press(features)
        predicted = subject_code_map(model, subject, bank)(predicted)
    else:
        console.print(f"[yellow]warning:[/] {cfg.audio} holds no speech (silent or unvoiced); "
                      "the avatar idles with its mouth closed")
        closed = int(np.argmin(signals.mouth_opening(subject.landmarks)))
        predicted = np.repeat(bank[closed : closed + 1], num_frames, 0)
        press = None
    projected = LLEProjector(bank, blend=cfg.lle).project(predicted)
    displacement = model.basis.decode(projected)
    displacement[:, mouth_points(subject.neutral)] *= cfg.mouth_amp
    stats = pose_blink.blink_statistics(subject.eye, subject.fps)
    eye = pose_blink.blink_track(num_frames, subject.fps, stats, cfg.blink, cfg.seed)
    displacement = with_eyes(displacement, eye, subject)
    landmarks = to_landmarks(displacement, subject.neutral).astype(np.float32)
    if press is not None:  # last: the calibration and the projection may leave the lips a little apart
        press_lips(landmarks, np.minimum(press * cfg.mouth_amp, 1.0))
    loudness = features[:, MEL_BINS + 2].reshape(num_frames, 2).mean(1)  # speakers move more when they speak
    poses = make_poses(cfg, subject, num_frames, loudness)
    rotation = rotation_matrix(*torch.from_numpy(poses[:, :3]).unbind(1)).numpy()
    motion = {
        "codes": projected.astype(np.float32),
        "landmarks": landmarks,
        "mouth_opening": signals.mouth_opening(landmarks).astype(np.float32),
        "eye_opening": eye.astype(np.float32),
        "pose": poses.astype(np.float32),
        "rotation": rotation.astype(np.float32),
        "translation": poses[:, 3:].astype(np.float32),
        "fps": np.float32(subject.fps),
    }
    return motion, features, subject, model


def write_motion(cfg: MotionConfig) -> Path:
    """Runs `generate_motion` and writes ``cfg.out`` atomically."""
    from avatar3d.files import atomic_path

    motion = generate_motion(cfg)[0]
    try:
        with atomic_path(cfg.out) as partial:
            np.savez(partial, **motion)
    except OSError as error:
        from avatar3d.errors import OutputError

        raise OutputError(f"cannot write {cfg.out}: {error.strerror}; choose a writable --out") from None
    seconds = len(motion["landmarks"]) / float(motion["fps"])
    console.print(f"motion: {len(motion['landmarks'])} frames ({seconds:.1f} s) -> {cfg.out}")
    return Path(cfg.out)
