"""Audio files: reading any format PyAV reads, writing WAV, resampling: the one path for each.

Samples are handled as float32 in [-1, 1]; mono audio is a 1-D array of shape
(N,), multi-channel audio has shape (N, C). Rates are in Hz.
"""

from __future__ import annotations

import os
import wave
from math import gcd
from pathlib import Path

import numpy as np

from avatar3d.errors import BadArgumentError, BadInputError, OutputError
from avatar3d.files import atomic_path

__all__ = ["read_audio", "write_wav", "resample"]


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Decodes the first audio stream of any file PyAV reads (WAV, FLAC, MP3, AAC, a video's
    track ...), mixed to mono, at the stream's own rate (`resample` changes it).

    Samples start at the audio stream's own start time and are trimmed to its recorded
    duration (decoders also return the last AAC frame's padding).

    Returns:
        ``(samples, rate)``: (N,) float32 samples in [-1, 1] and the rate in Hz.

    Raises:
        BadInputError: the file is missing, unreadable, has no audio stream or a corrupt one.
    """
    import av

    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"audio file {str(path)!r} does not exist: check the path")
    try:
        container = av.open(str(path))
    except av.error.FFmpegError as error:
        raise BadInputError(f"{path}: not a readable audio file ({error.strerror or error})") from None
    with container:
        if not container.streams.audio:
            raise BadInputError(f"{path}: the file has no audio stream")
        stream = container.streams.audio[0]
        # Planar float at the stream's own layout and rate; the channels are averaged here
        # (FFmpeg's own downmix adds them at 1/sqrt(2) each, which can clip).
        planar = av.AudioResampler(format="fltp", layout=stream.layout, rate=stream.rate)
        try:
            chunks = [out.to_ndarray().mean(0) for frame in container.decode(stream) for out in planar.resample(frame)]
        except av.error.FFmpegError as error:
            raise BadInputError(f"{path}: the audio stream is corrupt ({error.strerror or error})") from None
        samples = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
        if stream.duration:
            samples = samples[: int(round(stream.duration * stream.time_base * stream.rate))]
    return np.clip(samples, -1.0, 1.0), int(stream.rate)


def write_wav(path: str | os.PathLike, samples: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM WAV atomically.

    The data goes to a temporary file in the destination folder, which then
    replaces ``path``, so an interrupted run never leaves a partial file.

    Args:
        path: destination file.
        samples: (N,) float samples; values outside [-1, 1] are clipped.
            A (N, 1) array is accepted as mono.
        sample_rate: rate in Hz, positive.

    Raises:
        BadArgumentError: samples are not mono or the rate is not positive.
        OutputError: the destination cannot be written.
    """
    samples = np.asarray(samples)
    if samples.ndim == 2 and samples.shape[1] == 1:
        samples = samples[:, 0]
    if samples.ndim != 1:
        raise BadArgumentError(
            f"write_wav needs mono samples of shape (N,), got shape {samples.shape}: mix down first"
        )
    if int(sample_rate) <= 0:
        raise BadArgumentError(f"sample rate must be positive, got {sample_rate}")
    pcm = np.clip(np.nan_to_num(samples.astype(np.float64)), -1.0, 1.0)
    pcm = np.round(pcm * 32767.0).astype("<i2")

    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"cannot write {str(path)!r}: folder {str(folder)!r} does not exist")
    try:
        with atomic_path(path) as partial, wave.open(str(partial), "wb") as wf:
            wf.setnchannels(1)
            wf.setsampwidth(2)
            wf.setframerate(int(sample_rate))
            wf.writeframes(pcm.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {str(path)!r}: {exc.strerror or exc}") from None


def resample(samples: np.ndarray, rate_in: int, rate_out: int) -> np.ndarray:
    """Change the sample rate with polyphase filtering.

    Args:
        samples: (N,) or (N, C) samples; time is axis 0.
        rate_in: current rate in Hz.
        rate_out: wanted rate in Hz.

    Returns:
        float32 array of shape (ceil(N * rate_out / rate_in),) or (.., C);
        the input itself (as float32) when the rates are equal.

    Raises:
        BadArgumentError: a rate is not positive.
    """
    rate_in, rate_out = int(rate_in), int(rate_out)
    if rate_in <= 0 or rate_out <= 0:
        raise BadArgumentError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    samples = np.asarray(samples, dtype=np.float32)
    if rate_in == rate_out:
        return samples
    from scipy.signal import resample_poly

    g = gcd(rate_in, rate_out)
    out = resample_poly(samples, rate_out // g, rate_in // g, axis=0)
    return out.astype(np.float32, copy=False)
