"""Tests for avatar3d.audio.io."""

import os
import wave

import numpy as np
import pytest

from avatar3d.audio.io import read_audio, resample, write_wav
from avatar3d.errors import BadArgumentError, BadInputError, OutputError


def _sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _peak_freq(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / rate)[np.argmax(spec)])


def test_round_trip(tmp_path):
    x = _sine(440, 16000, 0.5)
    path = tmp_path / "a.wav"
    write_wav(path, x, 16000)
    y, rate = read_audio(path)
    assert rate == 16000
    assert y.dtype == np.float32 and y.shape == x.shape
    assert np.max(np.abs(y - x)) < 2 / 32768
    with wave.open(str(path)) as wf:
        assert (wf.getnchannels(), wf.getsampwidth(), wf.getframerate()) == (1, 2, 16000)
    assert os.listdir(tmp_path) == ["a.wav"]  # no temp file left behind


def test_write_clips_and_overwrites(tmp_path):
    path = tmp_path / "b.wav"
    write_wav(path, np.zeros(10, np.float32), 8000)
    write_wav(path, np.array([2.0, -3.0, 0.25], np.float32), 8000)
    y, _ = read_audio(path)
    assert y.shape == (3,)
    assert y[0] == pytest.approx(32767 / 32768)
    assert y[1] == pytest.approx(-32767 / 32768)
    assert y[2] == pytest.approx(0.25, abs=1e-4)


def test_read_float_and_stereo_mixes_to_the_channels_mean(tmp_path):
    import scipy.io.wavfile

    stereo = np.stack([_sine(200, 8000, 0.1), _sine(300, 8000, 0.1, amp=0.3)], axis=1)
    path = tmp_path / "f.wav"
    scipy.io.wavfile.write(path, 8000, stereo)
    y, rate = read_audio(path)
    assert rate == 8000 and y.shape == (len(stereo),) and y.dtype == np.float32
    np.testing.assert_allclose(y, stereo.mean(1), atol=1e-6)


def test_reads_a_compressed_track_at_its_own_rate(tmp_path):
    import av

    x = _sine(440, 22050, 0.5)
    path = tmp_path / "a.flac"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("flac", rate=22050, layout="mono")
        frame = av.AudioFrame.from_ndarray((x * 32767).astype(np.int16)[None], format="s16", layout="mono")
        frame.sample_rate = 22050
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    y, rate = read_audio(path)
    assert rate == 22050 and len(y) == len(x)
    assert np.max(np.abs(y - x)) < 2 / 32768


def test_read_missing_and_garbage(tmp_path):
    with pytest.raises(BadInputError, match="nope.wav"):
        read_audio(tmp_path / "nope.wav")
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"this is not a wav file at all")
    with pytest.raises(BadInputError, match="bad.wav"):
        read_audio(bad)


def test_write_errors(tmp_path):
    with pytest.raises(OutputError):
        write_wav(tmp_path / "missing" / "x.wav", np.zeros(4), 8000)
    with pytest.raises(BadArgumentError):
        write_wav(tmp_path / "x.wav", np.zeros((4, 2)), 8000)
    with pytest.raises(BadArgumentError):
        write_wav(tmp_path / "x.wav", np.zeros(4), 0)


@pytest.mark.parametrize("rate_in, rate_out", [(22050, 16000), (16000, 48000), (44100, 22050)])
def test_resample_length_and_frequency(rate_in, rate_out):
    x = _sine(440, rate_in, 1.0)
    y = resample(x, rate_in, rate_out)
    assert y.dtype == np.float32
    assert abs(len(y) - len(x) * rate_out / rate_in) <= 1
    assert abs(_peak_freq(y, rate_out) - 440) < 2
    # amplitude preserved away from the edges
    mid = y[len(y) // 4 : 3 * len(y) // 4]
    assert np.max(np.abs(mid)) == pytest.approx(0.5, rel=0.02)


def test_resample_identity_and_multichannel():
    x = _sine(100, 8000, 0.1)
    np.testing.assert_array_equal(resample(x, 8000, 8000), x)
    stereo = np.stack([x, -x], axis=1)
    y = resample(stereo, 8000, 16000)
    assert y.shape == (1600, 2)
    with pytest.raises(BadArgumentError):
        resample(x, 0, 8000)
