"""Audio augmentation: deterministic, timing kept (or reported), codecs without delay."""

import numpy as np
import pytest

from avatar3d.audio.augment import CODECS, RATE, augment, codec_round_trip
from avatar3d.rig.speech import synthesize


@pytest.fixture(scope="module")
def speech():
    s = synthesize("Please bring the puppy a map of the bumpy moon.", "en-us")
    return s.samples, s.sample_rate


def test_the_same_seed_gives_the_same_audio(speech):
    a, b, c = augment(*speech, 7), augment(*speech, 7), augment(*speech, 8)
    assert np.array_equal(a.samples, b.samples) and a.time_scale == b.time_scale
    assert not (len(a.samples) == len(c.samples) and np.allclose(a.samples, c.samples))


def test_length_follows_the_tempo_and_audio_stays_bounded(speech):
    samples, rate = speech
    scales = []
    for seed in range(12):
        out = augment(samples, rate, seed)
        assert out.samples.dtype == np.float32 and np.abs(out.samples).max() <= 0.95 + 1e-6
        assert len(out.samples) == pytest.approx(len(samples) * RATE / rate * out.time_scale, abs=2)
        scales.append(out.time_scale)
    assert min(scales) < 0.97 and max(scales) > 1.03 and 1.0 in scales  # tempo changes in some, not all


@pytest.mark.parametrize("encoder,container", CODECS)
def test_codec_round_trips_keep_the_timing(encoder, container):
    rng = np.random.default_rng(0)
    x = np.zeros(RATE, np.float32)
    x[4000:4400] = rng.standard_normal(400).astype(np.float32) * 0.5  # a burst to find again
    y = codec_round_trip(x, RATE, encoder, container, 32000)
    assert len(y) == len(x)
    lag = np.argmax(np.correlate(y, x[3000:5400], "valid")) - 3000
    assert abs(lag) <= 2
    assert 0.3 < np.abs(y[4000:4400]).std() / np.abs(x[4000:4400]).std() < 3  # lossy, not lost
