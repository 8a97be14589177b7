"""Shared fixtures: one short virtual-actor clip rendered once per test session."""

import numpy as np
import pytest

from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig


@pytest.fixture(scope="session")
def clip_dir(tmp_path_factory):
    """A 4-second, 256-pixel clip with every pass (about 10 s to render here)."""
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
