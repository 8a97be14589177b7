"""Audio augmentation: the same words as other voices, rooms, microphones and codecs deliver them.

A motion model that hears a few synthesisers learns their timbre instead of speech. Each
augmented utterance goes through a random chain (audiomentations, with pyroomacoustics for
rooms; the codecs through PyAV):

- transposition by up to ±4 semitones (signalsmith: pitch and formants move together, as
  between a larger and a smaller vocal tract; pitch alone varies with the voices' settings);
- tempo from 0.8 to 1.25 times (the phoneme times scale with it: `Augmented.time_scale`);
- a room's reverberation (shoebox rooms, RT60 0.15-0.8 s);
- a seven-band equaliser, and band limits (telephone-like high and low passes);
- coloured noise at 10-40 dB SNR;
- a lossy codec round trip: MP3, AAC or Opus at 16-64 kbit/s;
- level from -18 to +6 dB (peaks kept below full scale).

Everything runs at 16 kHz, the rate of the audio features. The chain is a pure function of
the seed: audiomentations draws from Python's and NumPy's global generators, so `augment`
seeds both.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from avatar3d.audio.io import resample

RATE = 16000
CODECS = (("libmp3lame", "mp3"), ("aac", "mp4"), ("libopus", "ogg"))  # (encoder, container) with no lead-in delay


@dataclass(frozen=True)
class Augmented:
    """An augmented clip: (N,) float32 ``samples`` at ``RATE`` Hz, and ``time_scale``, its
    duration over the original's (phoneme times are multiplied by it)."""

    samples: np.ndarray
    time_scale: float


def codec_round_trip(samples: np.ndarray, rate: int, encoder: str, container: str, bit_rate: int) -> np.ndarray:
    """(N,) float32 mono audio encoded by a lossy codec in memory and decoded back, (N,) at ``rate``.

    The containers chosen trim the encoders' priming samples, so the audio keeps its timing.
    """
    import av

    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container) as output:
        stream = output.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = bit_rate
        context = stream.codec_context
        resampler = av.AudioResampler(format=context.format.name, layout="mono", rate=rate,
                                      frame_size=context.frame_size or None)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32)[None], format="flt", layout="mono")
        frame.sample_rate = rate
        position = 0
        for chunk in [*resampler.resample(frame), *resampler.resample(None)]:
            chunk.pts, chunk.time_base = position, Fraction(1, rate)  # timestamps let mp4 trim AAC's priming
            position += chunk.samples
            output.mux(stream.encode(chunk))
        output.mux(stream.encode(None))
    decoded = []
    with av.open(io.BytesIO(buffer.getvalue()), mode="r", format=container) as source:
        back = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in source.decode(audio=0):
            decoded += [chunk.to_ndarray().reshape(-1) for chunk in back.resample(frame)]
        decoded += [chunk.to_ndarray().reshape(-1) for chunk in back.resample(None)]
    out = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    return np.pad(out, (0, max(0, len(samples) - len(out))))[: len(samples)].astype(np.float32)


def _chain():
    import audiomentations as am

    return am.Compose([
        am.PitchShift(min_semitones=-4, max_semitones=4, p=0.5),
        am.TimeStretch(min_rate=0.8, max_rate=1.25, leave_length_unchanged=False, p=0.4),
        am.RoomSimulator(min_target_rt60=0.15, max_target_rt60=0.8, calculation_mode="rt60",
                         leave_length_unchanged=True, p=0.3),
        am.SevenBandParametricEQ(min_gain_db=-6, max_gain_db=6, p=0.3),
        am.OneOf([am.HighPassFilter(min_cutoff_freq=100, max_cutoff_freq=400),
                  am.LowPassFilter(min_cutoff_freq=3000, max_cutoff_freq=7000)], p=0.3),
        am.AddColorNoise(min_snr_db=10, max_snr_db=40, p=0.4),
    ])


def augment(samples: np.ndarray, rate: int, seed: int) -> Augmented:
    """A random augmentation of (N,) float audio at ``rate`` Hz; the same seed, the same result."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    rng = np.random.default_rng(seed)
    x = resample(np.asarray(samples, np.float32), rate, RATE)
    out = _chain()(samples=x, sample_rate=RATE).astype(np.float32)
    time_scale = len(out) / max(len(x), 1)  # only the tempo change alters the length
    if rng.random() < 0.3:
        encoder, container = CODECS[rng.integers(len(CODECS))]
        out = codec_round_trip(out, RATE, encoder, container, int(rng.choice([16000, 24000, 32000, 64000])))
    gain = 10 ** (rng.uniform(-18, 6) / 20)
    peak = float(np.abs(out).max()) if len(out) else 0.0
    out = out * (min(gain, 0.95 / peak) if peak > 0 else gain)
    return Augmented(out.astype(np.float32), time_scale)
