"""Tests for avatar3d.audio.features."""

import numpy as np
import pytest

from avatar3d.audio import features
from avatar3d.audio.features import (
    ENCODERS,
    ROWS_PER_FRAME,
    energy,
    extract,
    log_mel,
    phone_posteriors,
    pitch,
    register_encoder,
)
from avatar3d.audio.io import resample
from avatar3d.errors import BadArgumentError
from avatar3d.rig.speech import phoneme_class, synthesize

SR = 16000
LEAD_S = 0.5  # silence put before synthesised speech


def _speech(text: str, voice: str = "en-us"):
    """16 kHz speech after LEAD_S of silence, and its bilabial phoneme spans in seconds."""
    sp = synthesize(text, voice)
    lead = np.zeros(int(LEAD_S * SR), np.float32)
    x = np.concatenate([lead, resample(sp.samples, sp.sample_rate, SR)])
    bilabial = [
        (LEAD_S + p.start / sp.sample_rate, LEAD_S + p.end / sp.sample_rate)
        for p in sp.phonemes
        if phoneme_class(p.label) == "bilabial"
    ]
    return x, bilabial


def _num_frames(x: np.ndarray, fps: float) -> int:
    return int(len(x) / SR * fps)


@pytest.fixture(scope="module")
def papa_mama():
    x, bilabial = _speech("Papa and mama.")
    return x, bilabial, extract(x, SR, _num_frames(x, 25), 25)


@pytest.mark.parametrize("fps", [25, 29.97])
def test_shapes(fps):
    x = np.random.default_rng(0).standard_normal(SR).astype(np.float32) * 0.1
    T = 17
    out = extract(x, SR, T, fps)
    P = len(out["phone_names"])
    assert out["rows_per_frame"] == ROWS_PER_FRAME == 2
    assert out["mel"].shape == (2 * T, 80) and out["mel"].dtype == np.float32
    for key in ("f0", "voiced", "energy"):
        assert out[key].shape == (2 * T,) and out[key].dtype == np.float32
    assert out["phones"].shape == (2 * T, P)
    assert np.all(np.isfinite(out["mel"]))


def test_empty():
    out = extract(np.zeros(0, np.float32), SR, 0, 25)
    assert out["mel"].shape == (0, 80)
    assert out["f0"].shape == out["voiced"].shape == out["energy"].shape == (0,)
    assert out["phones"].shape == (0, len(out["phone_names"]))
    # Frames past the end of the audio are silence, not an error.
    assert energy(np.zeros(0, np.float32), SR, 3, 25).shape == (6,)


def test_resamples_other_rates():
    x = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050).astype(np.float32)
    a = log_mel(x, 22050, 25, 25)
    b = log_mel(resample(x, 22050, SR), SR, 25, 25)
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("fps", [25, 29.97, 30])
def test_tone_burst_lands_in_its_frame(fps):
    T, k = 20, 7
    x = np.zeros(int(T / fps * SR), np.float32)
    start, end = int(np.ceil(k / fps * SR)), int((k + 1) / fps * SR)
    x[start:end] = 0.5 * np.sin(2 * np.pi * 1000 * np.arange(end - start) / SR)
    peak = log_mel(x, SR, T, fps).max(axis=1)
    assert set(np.argsort(peak)[-2:]) == {2 * k, 2 * k + 1}
    assert peak[2 * k - 1] < peak[2 * k] - 3 and peak[2 * k + 2] < peak[2 * k + 1] - 3
    e = energy(x, SR, T, fps)
    assert e[2 * k] > -2 and e[2 * k + 1] > -2
    assert e[2 * k - 2] < -10 and e[2 * k + 3] < -10


def test_energy_speech_vs_silence(papa_mama):
    x, _, out = papa_mama
    lead_rows = int(LEAD_S * 50) - 2
    assert out["energy"][:lead_rows].max() < -10
    assert np.median(out["energy"][lead_rows + 5 :]) > -6


def test_pitch_of_harmonic_signal():
    t = np.arange(SR) / SR
    x = sum((0.3 / h) * np.sin(2 * np.pi * 200 * h * t) for h in range(1, 8)).astype(np.float32)
    f0, voiced = pitch(x, SR, 25, 25)
    inner = slice(2, -2)  # edge rows half overlap the zero padding
    assert np.all(np.abs(f0[inner] - 200) < 6)
    assert voiced[inner].min() > 0.95
    f0, voiced = pitch(np.zeros(SR, np.float32), SR, 25, 25)
    assert f0.max() == 0 and voiced.max() == 0


@pytest.mark.parametrize("voice, lo, hi", [("en-us", 80, 160), ("en-us-f", 160, 280)])
def test_pitch_of_espeak_voices(voice, lo, hi):
    x, _ = _speech("How are you doing today?", voice)
    f0, voiced = pitch(x, SR, _num_frames(x, 25), 25)
    assert voiced[: int(LEAD_S * 50) - 2].max() == 0
    assert np.mean(voiced > 0.5) > 0.3
    assert lo < np.median(f0[f0 > 0]) < hi


def test_phone_posteriors(papa_mama):
    x, bilabial, out = papa_mama
    names = list(out["phone_names"])
    post = out["phones"]
    assert {"AA", "P", "M", "SIL"} <= set(names)
    np.testing.assert_allclose(post.sum(axis=1), 1.0, atol=1e-5)
    assert post.min() > 0
    lead_rows = int(LEAD_S * 50) - 2
    assert np.all(post[:lead_rows].argmax(axis=1) == names.index("SIL"))
    lips = post[:, [names.index(n) for n in ("P", "B", "M")]].sum(axis=1)
    # Each word ("papa", "mama") spans its first to last bilabial, give or take 40 ms.
    for first, last in (bilabial[:2], bilabial[2:]):
        word = lips[int(first[0] * 50) - 2 : int(last[1] * 50) + 2]
        assert word.max() > 0.3


def test_phone_posteriors_standalone_matches_extract(papa_mama):
    x, _, out = papa_mama
    post, names = phone_posteriors(x, SR, _num_frames(x, 25), 25)
    assert names == list(out["phone_names"])
    np.testing.assert_array_equal(post, out["phones"])  # decoding is deterministic


def test_long_audio_is_chunked_at_pauses(monkeypatch):
    monkeypatch.setattr(features, "_MAX_CHUNK_S", 1.5)
    monkeypatch.setattr(features, "_CUT_SEARCH_S", 0.3)
    x, _ = _speech("Papa and mama. Papa and mama. Papa and mama.")
    bounds = features._chunks(x, 160)
    parts = int(np.ceil(len(x) / (1.5 * SR)))
    assert len(bounds) == parts >= 2
    assert bounds[0][0] == 0 and bounds[-1][1] == len(x)
    assert all(a[1] == b[0] and a[1] % 160 == 0 for a, b in zip(bounds, bounds[1:]))
    for i, (_, cut) in enumerate(bounds[:-1], start=1):
        assert abs(cut - i * len(x) / parts) <= 0.3 * SR + 160  # near the equal split
        quiet = features._frame_rms(x[cut - 400 : cut + 400], 80).mean()
        assert quiet < 0.5 * features._frame_rms(x, 80).mean()  # and in a pause


def test_chunks_decode_the_same_in_worker_processes(monkeypatch):
    monkeypatch.setattr(features, "_MAX_CHUNK_S", 1.5)
    x, _ = _speech("Papa and mama. Papa and mama. Papa and mama.")
    T = _num_frames(x, 25)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # avatar3d.runtime.threads(): one thread, no workers
    in_order, _ = phone_posteriors(x, SR, T, 25)
    spawned = []
    real_pool = features.worker_pool

    def pool(workers, start):
        spawned.append(workers)
        return real_pool(workers, start)

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setattr(features, "worker_pool", pool)
    in_workers, _ = phone_posteriors(x, SR, T, 25)
    assert spawned == [2]
    np.testing.assert_array_equal(in_workers, in_order)
    np.testing.assert_allclose(in_order.sum(axis=1), 1.0, atol=1e-5)


def test_decoder_frame_grid_matches_pocketsphinx():
    config = features._decoder().config
    assert features._DECODER_HOP == round(SR / float(config["frate"]))
    assert features._DECODER_WINDOW == round(SR * float(config["wlen"]))


def test_registry(monkeypatch):
    monkeypatch.setattr(features, "ENCODERS", dict(ENCODERS))

    def dummy(samples, sample_rate, num_frames, fps):
        assert sample_rate == SR and samples.dtype == np.float32
        return {"dummy": np.full((ROWS_PER_FRAME * num_frames, 3), len(samples), np.float32)}

    register_encoder("dummy", dummy)
    out = extract(np.zeros(22050, np.float32), 22050, 4, 25, encoders=["dummy", "energy"])
    assert out["dummy"].shape == (8, 3) and out["dummy"][0, 0] == SR
    assert out["energy"].shape == (8,)
    with pytest.raises(BadArgumentError, match="dummy"):
        extract(np.zeros(10, np.float32), SR, 1, 25, encoders=["hubert"])
    with pytest.raises(BadArgumentError):
        register_encoder("", dummy)


@pytest.mark.parametrize("num_frames, fps", [(-1, 25), (2.5, 25), (3, 0), (3, float("nan"))])
def test_bad_requests(num_frames, fps):
    with pytest.raises(BadArgumentError):
        extract(np.zeros(100, np.float32), SR, num_frames, fps)
