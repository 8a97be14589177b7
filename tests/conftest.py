"""Shared fixtures: one short virtual-actor clip rendered once per test session, real speech."""

from pathlib import Path

import numpy as np
import pytest

from avatar3d.synth.config import SynthConfig

# Heavier modules are imported by the fixtures that need them: the GPU check runs tests/cuda_ext
# where PyAV and MediaPipe are not installed (docs/gpu.md).


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A 4-second, 256-pixel clip with every pass (about 10 s to render here)."""
    from avatar3d.synth.clip import make_clip

    out = tmp_path_factory.mktemp("clip")
    make_clip(SynthConfig(out=out, seconds=4, resolution=256, seed=3, supersample=1,
                          passes="albedo,normal,label"))
    return out


@pytest.fixture(scope="session")
def truth(clip_dir):
    with np.load(clip_dir / "truth.npz") as data:
        return dict(data)


@pytest.fixture(scope="session")
def subject_dir(clip_dir, tmp_path_factory):
    """The session clip prepared at 128 pixels (a few seconds)."""
    from data_prep.config import PrepConfig
    from data_prep.pipeline import run_prep

    return run_prep(PrepConfig(video=clip_dir / "video.mp4", out=tmp_path_factory.mktemp("prep") / "subject",
                               resolution=128, allow_short=True))


def write_stereo_speech(source, path, seconds=None, rate=44100):
    """A speech wav re-written as 16-bit stereo PCM at ``rate`` (right channel at half level),
    cut to ``seconds``: the kind of file a studio hands over."""
    import av

    from avatar3d.audio.io import read_audio, resample

    samples, source_rate = read_audio(source)
    samples = resample(samples, source_rate, rate)[: int(rate * seconds) if seconds else None]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=rate, layout="stereo")
        stereo = (np.stack([samples, samples * 0.5]) * 32000).astype(np.int16).T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(stereo), format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    return path


TINY_RENDER = {"head": {"grid": {"levels": 4, "log2_table_size": 12, "finest_resolution": 64}},
               "march": {"grid_resolution": 16, "steps_per_diagonal": 64},
               "frames_per_batch": 2, "rays_per_frame": 256, "validate_every": 1000, "checkpoint_every": 10}
"""Render training settings small enough for tests (seconds on a CPU), a `config.build` layer."""


TINY_GAUSSIANS = {"backend": "gaussians", "validate_every": 1000, "checkpoint_every": 10, "frames_per_batch": 2,
                  "rays_per_frame": 256, "gaussians": {"face_count": 800, "shell_count": 800, "mouth_count": 100,
                                                       "hidden": 16, "densify_every": 10}}
"""Gaussian-head training settings small enough for tests, a `config.build` layer."""


def _finished_run(subject_dir, folder, settings: dict, head_steps: int, torso_steps: int):
    import torch

    from avatar3d import config as config_io
    from avatar3d.train.config import RenderTrainConfig
    from avatar3d.train.render import train_render

    torch.manual_seed(0)
    train_render(config_io.build(RenderTrainConfig, settings, {"subject": subject_dir, "run": folder,
                                                               "head_steps": head_steps, "torso_steps": torso_steps}),
                 torch.device("cpu"))
    return folder


@pytest.fixture(scope="session")
def trained_run(subject_dir, tmp_path_factory):
    """A finished render run of the session subject with tiny networks (60 head + 20 torso steps)."""
    return _finished_run(subject_dir, tmp_path_factory.mktemp("runs") / "run", TINY_RENDER, 60, 20)


@pytest.fixture(scope="session")
def gaussian_run(subject_dir, tmp_path_factory):
    """A finished Gaussian render run of the session subject (40 head + 10 torso steps)."""
    return _finished_run(subject_dir, tmp_path_factory.mktemp("runs") / "gaussians", TINY_GAUSSIANS, 40, 10)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """A tiny motion model (motion.pt) trained on a 4-utterance synthetic corpus."""
    from avatar3d.train.config import MotionTrainConfig
    from avatar3d.train.motion import MODEL, MotionTrainer

    root = tmp_path_factory.mktemp("motion")
    cfg = MotionTrainConfig(utterances=4, heldout=1, sync_steps=5, vae_steps=5, crop_frames=40, width=16, batch=2,
                            corpus_root=root / "corpus", run=root / "run")
    return MotionTrainer(cfg).run() / MODEL


SPEECH_DEV = Path(__file__).resolve().parents[1] / ".cache" / "speech-dev"
"""The real-speech development set (`make speech-dev`, which `make test` runs first)."""


@pytest.fixture(scope="session")
def speech_dev():
    """The development set's folder; the tests that need real speech fail without it."""
    assert (SPEECH_DEV / "arctic_a0009.wav").exists(), "run `make speech-dev` (make test does) to fetch real speech"
    return SPEECH_DEV
