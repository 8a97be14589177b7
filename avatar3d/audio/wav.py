"""WAV file input/output and resampling.

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

__all__ = ["read_wav", "write_wav", "resample"]


def read_wav(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read a WAV file.

    Handles integer PCM (8, 16, 24, 32 bit) and IEEE float WAVs.

    Args:
        path: WAV file to read.

    Returns:
        ``(samples, sample_rate)``: float32 samples in [-1, 1], shape (N,) for
        mono or (N, C) for C channels, and the sample rate in Hz.

    Raises:
        BadInputError: the file is missing, unreadable or not a supported WAV.
    """
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"audio file {str(path)!r} does not exist: check the path")
    import scipy.io.wavfile
    import warnings

    try:
        with warnings.catch_warnings():
            # scipy warns about unknown chunks (LIST, cue, ...); they are harmless.
            warnings.simplefilter("ignore", scipy.io.wavfile.WavFileWarning)
            rate, data = scipy.io.wavfile.read(str(path), mmap=False)
    except Exception as exc:  # scipy raises ValueError, OSError, struct errors...
        raise BadInputError(
            f"cannot read {str(path)!r} as WAV ({exc}): give a 16-bit PCM or float WAV file"
        ) from None
    data = np.asarray(data)
    if data.size == 0:
        raise BadInputError(f"audio file {str(path)!r} holds no samples: give a non-empty WAV file")
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype == np.int16:
        samples = data.astype(np.float32) / 32768.0
    elif data.dtype == np.int32:
        # 24-bit files are returned left-aligned in int32 by scipy.
        samples = (data.astype(np.float64) / 2147483648.0).astype(np.float32)
    elif data.dtype.kind == "f":
        samples = data.astype(np.float32)
        if not np.all(np.isfinite(samples)):
            raise BadInputError(
                f"audio file {str(path)!r} holds NaN or infinite samples: re-export it"
            )
    else:
        raise BadInputError(
            f"audio file {str(path)!r} has unsupported sample type {data.dtype}: "
            "convert it to 16-bit PCM WAV"
        )
    np.clip(samples, -1.0, 1.0, out=samples)
    return samples, int(rate)


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
