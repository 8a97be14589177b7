"""Per-video-frame audio features, the input of the audio-to-expression model.

Audio is mono float32 at :data:`SAMPLE_RATE` (other rates are resampled),
aligned so that sample 0 is the start of video frame 0. Every feature has
:data:`ROWS_PER_FRAME` rows per video frame: rows ``2i`` and ``2i + 1`` cover
the first and second half of video frame ``i``'s interval
``[i / fps, (i + 1) / fps)`` (50 rows/s at 25 fps). Each row's analysis
window is centred on the centre of the row's interval, to within half a
sample, so the alignment holds for any frame rate (25, 29.97, 30...). Audio
outside ``[0, N)`` counts as silence (zeros), so features can be asked for
more frames than the audio covers.

Encoders live in :data:`ENCODERS`, a registry :func:`extract` runs by name;
:func:`register_encoder` adds more (e.g. a self-supervised speech model
loaded from a local folder).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import sys
from typing import Callable, Iterable, Iterator

import numpy as np

from avatar3d.audio.io import resample
from avatar3d.errors import BadArgumentError
from avatar3d.runtime import worker_count, worker_pool

__all__ = [
    "ROWS_PER_FRAME",
    "SAMPLE_RATE",
    "PHONES",
    "ENCODERS",
    "Encoder",
    "log_mel",
    "pitch",
    "energy",
    "phone_posteriors",
    "extract",
    "register_encoder",
]

ROWS_PER_FRAME = 2
SAMPLE_RATE = 16000

#: The phone set of :func:`phone_posteriors`: silence then the 39 CMU phones of
#: pocketsphinx's en-us acoustic model. Its noise fillers map to ``"SIL"``.
PHONES: tuple[str, ...] = (
    "SIL", "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY",
    "F", "G", "HH", "IH", "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R",
    "S", "SH", "T", "TH", "UH", "UW", "V", "W", "Y", "Z", "ZH",
)  # fmt: skip

_WINDOW = 400  # 25 ms at 16 kHz: mel and energy analysis window
_N_FFT = 512
_MEL_FMIN = 55.0
_MEL_FMAX = 7600.0
_LOG_FLOOR = 1e-6
_BLOCK_ROWS = 2048  # rows framed at once, so memory stays bounded on long audio

_F0_MIN = 80.0
_F0_MAX = 750.0
_YIN_WINDOW = 400  # 25 ms integration window: two periods at 80 Hz
_YIN_THRESHOLD = 0.15  # the first CMNDF dip below this is the period
_VOICED_AT = 0.15  # CMNDF minimum giving voicing probability 1 ...
_UNVOICED_AT = 0.5  # ... and 0, linear in between
_SILENCE_RMS = 3e-4  # about -70 dBFS: below this a row is unvoiced whatever YIN says

_MAX_CHUNK_S = 30.0  # longer audio is decoded in near-equal chunks of about this much at most
_CUT_SEARCH_S = 2.0  # each cut is at the quietest point this close to the equal split
_LOUD_LEVEL = 0.3  # decoder input is scaled so its loud frames have this RMS
_NOISE_RMS = 3e-3  # then gets this much white noise (40 dB below speech level)
_DECODER_HOP = 160  # pocketsphinx's front end: 100 frames/s at 16 kHz ...
_DECODER_WINDOW = 410  # ... each a 25.625 ms window
_SCORE_SCALE = 350.0  # segment acoustic score per frame -> confidence, see _confidence
_MIN_CONFIDENCE = 0.05
_PHONE_FLOOR = 1e-3

#: An encoder: ``(samples, sample_rate, num_frames, fps) -> {key: array}``, or a call
#: returning that dict, when it has started its work in the background.
Encoder = Callable[[np.ndarray, int, int, float], "dict[str, np.ndarray] | Callable[[], dict[str, np.ndarray]]"]


# --- shared framing ----------------------------------------------------------


def _check_request(num_frames: int, fps: float) -> tuple[int, float]:
    if isinstance(num_frames, bool) or not isinstance(num_frames, (int, np.integer)):
        raise BadArgumentError(f"num_frames must be an integer, got {num_frames!r}")
    if num_frames < 0:
        raise BadArgumentError(f"num_frames must be 0 or more, got {num_frames}")
    fps = float(fps)
    if not (math.isfinite(fps) and fps > 0):
        raise BadArgumentError(f"fps must be a positive number, got {fps!r}")
    return int(num_frames), fps


def prepare_audio(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """Mono float32 at :data:`SAMPLE_RATE`; (N, C) input is averaged to mono."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    if samples.ndim != 1:
        raise BadArgumentError(
            f"audio must have shape (N,) or (N, C), got shape {samples.shape}"
        )
    return resample(samples, sample_rate, SAMPLE_RATE)


def _row_centres(num_frames: int, fps: float) -> np.ndarray:
    """(2T,) float64 centre of each row's interval, in samples at 16 kHz."""
    rows = np.arange(ROWS_PER_FRAME * num_frames, dtype=np.float64)
    return (rows + 0.5) * SAMPLE_RATE / (ROWS_PER_FRAME * fps)


def _blocks(n: int, size: int = _BLOCK_ROWS) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(start + size, n))


def _frames(x: np.ndarray, centres: np.ndarray, length: int) -> np.ndarray:
    """(R, length) windows of ``x`` centred on ``centres`` (samples); zeros outside x."""
    # Sample k sits at time k, so a window starting at s is centred at s + (length - 1) / 2.
    starts = np.round(centres - (length - 1) / 2.0).astype(np.int64)
    idx = starts[:, None] + np.arange(length)
    if len(x) == 0:
        return np.zeros(idx.shape, dtype=np.float32)
    inside = (idx >= 0) & (idx < len(x))
    return np.where(inside, x[np.clip(idx, 0, len(x) - 1)], np.float32(0.0))


# --- log mel -----------------------------------------------------------------


def _hz_to_mel(hz):
    return 2595.0 * np.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def _mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def _mel_filterbank(bins: int) -> np.ndarray:
    """(N_FFT // 2 + 1, bins) triangular HTK-mel filters, each of unit area in Hz."""
    edges = _mel_to_hz(np.linspace(_hz_to_mel(_MEL_FMIN), _hz_to_mel(_MEL_FMAX), bins + 2))
    freqs = np.fft.rfftfreq(_N_FFT, 1.0 / SAMPLE_RATE)
    lo, mid, hi = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (freqs - lo) / (mid - lo)
    falling = (hi - freqs) / (hi - mid)
    tri = np.maximum(0.0, np.minimum(rising, falling))
    # Unit area keeps wide high-frequency bands from dominating the spectrum.
    return (tri * (2.0 / (hi - lo))).T.astype(np.float32)


def log_mel(
    samples: np.ndarray, sample_rate: int, num_frames: int, fps: float, bins: int = 80
) -> np.ndarray:
    """Log mel power spectrogram, two rows per video frame.

    Each row is a 25 ms Hann window (400 samples at 16 kHz, zero-padded to a
    512-point FFT) centred on the row's interval, through ``bins`` triangular
    filters spaced on the mel scale from 55 Hz to 7600 Hz.

    Args:
        samples: (N,) float audio in [-1, 1], sample 0 at the start of video
            frame 0; (N, C) is averaged to mono.
        sample_rate: rate of ``samples`` in Hz; resampled to 16 kHz if different.
        num_frames: T, the number of video frames.
        fps: video frame rate in frames per second.
        bins: number of mel bands.

    Returns:
        (2T, bins) float32 ``log(mel power + 1e-6)``, power of samples in [-1, 1].

    Raises:
        BadArgumentError: malformed audio, rate, frame count, fps or bins.
    """
    num_frames, fps = _check_request(num_frames, fps)
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise BadArgumentError(f"mel bins must be a positive integer, got {bins!r}")
    x = prepare_audio(samples, sample_rate)
    centres = _row_centres(num_frames, fps)
    filters = _mel_filterbank(int(bins))
    window = np.hanning(_WINDOW + 2)[1:-1].astype(np.float32)  # no zero end points
    out = np.empty((len(centres), int(bins)), dtype=np.float32)
    for block in _blocks(len(centres)):
        spectrum = np.fft.rfft(_frames(x, centres[block], _WINDOW) * window, n=_N_FFT)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        out[block] = np.log(power @ filters + _LOG_FLOOR)
    return out


# --- pitch -------------------------------------------------------------------


def _cmndf(frames: np.ndarray, tau_max: int) -> np.ndarray:
    """(R, tau_max + 1) YIN cumulative-mean-normalised difference of each frame.

    ``frames`` is (R, W + tau_max); the first W samples are compared with the
    same span shifted by each lag. Silent frames come out as all ones.
    """
    width = frames.shape[1] - tau_max
    x = frames.astype(np.float64)
    n_fft = 1 << int(math.ceil(math.log2(frames.shape[1] + width)))
    head = np.fft.rfft(x[:, :width], n=n_fft)
    whole = np.fft.rfft(x, n=n_fft)
    cross = np.fft.irfft(np.conj(head) * whole, n=n_fft)[:, : tau_max + 1]
    cum_sq = np.concatenate([np.zeros((len(x), 1)), np.cumsum(x * x, axis=1)], axis=1)
    lags = np.arange(tau_max + 1)
    shifted_energy = cum_sq[:, lags + width] - cum_sq[:, lags]
    diff = np.maximum(cum_sq[:, width : width + 1] + shifted_energy - 2.0 * cross, 0.0)
    diff[:, 0] = 0.0
    running = np.cumsum(diff, axis=1)
    out = np.ones_like(diff)
    np.divide(diff * lags, running, out=out, where=running > 1e-12)
    out[:, 0] = 1.0
    return out


def _pick_period(cmndf: np.ndarray, tau_min: int) -> tuple[np.ndarray, np.ndarray]:
    """Period (R,) in samples, sub-sample refined, and the CMNDF value there (R,).

    YIN's rule: the first local minimum below the threshold, else the global
    minimum. Taking the first dip rather than the deepest avoids picking a
    multiple of the period (an octave too low).
    """
    d = cmndf[:, tau_min:]
    inner = d[:, 1:-1]
    dips = (inner <= d[:, :-2]) & (inner <= d[:, 2:]) & (inner < _YIN_THRESHOLD)
    has_dip = dips.any(axis=1)
    best = np.where(has_dip, np.argmax(dips, axis=1) + 1, np.argmin(d, axis=1))
    rows = np.arange(len(d))
    left = d[rows, np.maximum(best - 1, 0)]
    centre = d[rows, best]
    right = d[rows, np.minimum(best + 1, d.shape[1] - 1)]
    curvature = left - 2.0 * centre + right
    offset = np.zeros_like(centre)
    np.divide(0.5 * (left - right), curvature, out=offset, where=curvature > 1e-12)
    offset = np.clip(offset, -0.5, 0.5)
    return best + tau_min + offset, centre


def pitch(
    samples: np.ndarray, sample_rate: int, num_frames: int, fps: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fundamental frequency by YIN, two rows per video frame.

    Each row compares a 25 ms window with itself shifted by every lag from
    1/750 s to 1/80 s (the analysed span, 37.5 ms, is centred on the row's
    interval). The period is YIN's first cumulative-mean-normalised
    difference (CMNDF) dip below 0.15, refined by a parabola. Voicing
    probability falls linearly from 1 at a CMNDF minimum of 0.15 to 0 at
    0.5, and is 0 in rows quieter than about -70 dBFS.

    Args:
        samples: (N,) float audio in [-1, 1], sample 0 at the start of video
            frame 0; (N, C) is averaged to mono.
        sample_rate: rate of ``samples`` in Hz; resampled to 16 kHz if different.
        num_frames: T, the number of video frames.
        fps: video frame rate in frames per second.

    Returns:
        ``(f0, voiced)``: (2T,) float32 f0 in Hz within [80, 750], 0 where
        the voicing probability is below 0.5; and (2T,) float32 voicing
        probability in [0, 1].

    Raises:
        BadArgumentError: malformed audio, rate, frame count or fps.
    """
    num_frames, fps = _check_request(num_frames, fps)
    x = prepare_audio(samples, sample_rate)
    centres = _row_centres(num_frames, fps)
    tau_min = int(math.floor(SAMPLE_RATE / _F0_MAX))
    tau_max = int(math.ceil(SAMPLE_RATE / _F0_MIN))
    f0 = np.zeros(len(centres), dtype=np.float32)
    voiced = np.zeros(len(centres), dtype=np.float32)
    for block in _blocks(len(centres)):
        frames = _frames(x, centres[block], _YIN_WINDOW + tau_max)
        period, depth = _pick_period(_cmndf(frames, tau_max), tau_min)
        prob = np.clip((_UNVOICED_AT - depth) / (_UNVOICED_AT - _VOICED_AT), 0.0, 1.0)
        # YIN is level-blind: hum or dither in near-silence can look periodic.
        rms = np.sqrt(np.mean(np.square(frames[:, :_YIN_WINDOW], dtype=np.float64), axis=1))
        prob[rms < _SILENCE_RMS] = 0.0
        hz = np.clip(SAMPLE_RATE / period, _F0_MIN, _F0_MAX)
        f0[block] = np.where(prob >= 0.5, hz, 0.0)
        voiced[block] = prob
    return f0, voiced


# --- energy ------------------------------------------------------------------


def energy(samples: np.ndarray, sample_rate: int, num_frames: int, fps: float) -> np.ndarray:
    """Log RMS energy, two rows per video frame.

    Args:
        samples: (N,) float audio in [-1, 1], sample 0 at the start of video
            frame 0; (N, C) is averaged to mono.
        sample_rate: rate of ``samples`` in Hz; resampled to 16 kHz if different.
        num_frames: T, the number of video frames.
        fps: video frame rate in frames per second.

    Returns:
        (2T,) float32 natural log of the RMS over a 25 ms rectangular window
        centred on each row; about -11.5 (RMS 1e-5, -100 dBFS) in digital
        silence, about -2 in normal speech.

    Raises:
        BadArgumentError: malformed audio, rate, frame count or fps.
    """
    num_frames, fps = _check_request(num_frames, fps)
    x = prepare_audio(samples, sample_rate)
    centres = _row_centres(num_frames, fps)
    out = np.empty(len(centres), dtype=np.float32)
    for block in _blocks(len(centres)):
        frames = _frames(x, centres[block], _WINDOW)
        mean_sq = np.mean(np.square(frames, dtype=np.float64), axis=1)
        out[block] = 0.5 * np.log(mean_sq + 1e-10)
    return out


# --- phone posteriors --------------------------------------------------------


def _decoder():
    """A fresh pocketsphinx allphone decoder (about 20 ms to load), silenced."""
    import pocketsphinx

    model = pocketsphinx.get_model_path("en-us")
    return pocketsphinx.Decoder(
        hmm=os.path.join(model, "en-us"),
        allphone=os.path.join(model, "en-us-phone.lm.bin"),
        dict=None,
        lw=2.0,  # phone-LM weight: best frame accuracy of 1, 2 and 4 on espeak-ng speech
        samprate=SAMPLE_RATE,
        loglevel="FATAL",
        logfn=os.devnull,
    )


def _frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    """(N // hop,) RMS of consecutive hop-sample frames."""
    n = len(x) // hop
    frames = x[: n * hop].astype(np.float64).reshape(n, hop)
    return np.sqrt(np.mean(frames * frames, axis=1))


def _chunks(x: np.ndarray, hop: int) -> list[tuple[int, int]]:
    """Split audio into decodable ``(start, end)`` sample ranges.

    Audio up to 30 s is one chunk. Longer audio is split into the fewest
    near-equal parts of at most about 30 s, each cut at the quietest 100 ms
    (by 10 ms frame RMS, smoothed) within 2 s of the equal split, which in
    speech is almost always a pause, so no phone is split. Bounded chunks
    keep memory and latency bounded; near-equal ones keep the worker
    processes of :func:`_start_decode` equally busy; every chunk is at least 11 s,
    long enough for the decoder's per-chunk cepstral mean. Cuts fall on
    multiples of ``hop`` so every chunk's frames lie on one global grid.
    """
    n = len(x)
    parts = max(1, math.ceil(n / (_MAX_CHUNK_S * SAMPLE_RATE)))
    if parts == 1:
        return [(0, n)]
    smooth = np.convolve(_frame_rms(x, hop), np.ones(10) / 10.0, mode="same")
    # Within a quarter part of the split, so no chunk is less than half a part.
    reach = min(int(_CUT_SEARCH_S * SAMPLE_RATE), n // (4 * parts)) // hop
    cuts = []
    for i in range(1, parts):
        middle = round(i * n / parts) // hop
        lo, hi = middle - reach, middle + reach + 1
        cuts.append((lo + int(np.argmin(smooth[lo:hi]))) * hop)
    edges = [0, *cuts, n]
    return list(zip(edges[:-1], edges[1:]))


def decoder_pcm(chunk: np.ndarray, hop: int) -> bytes:
    """16-bit PCM bytes, level-normalised and with a fixed noise floor added.

    The acoustic model was trained on real recordings: digital silence and
    very clean synthetic speech make it hallucinate or drop phones, and a
    noise floor 40 dB below the speech level measurably helps (by frame
    accuracy on espeak-ng speech). The level is set first so the floor sits
    at the same relative level whatever the recording gain. The noise has a
    fixed seed so results are reproducible.
    """
    rms = _frame_rms(chunk, hop)
    loud = float(np.percentile(rms, 95)) if len(rms) else 0.0
    peak = float(np.max(np.abs(chunk))) if len(chunk) else 0.0
    gain = min(_LOUD_LEVEL / loud, 0.9 / peak) if loud > 1e-5 else 1.0
    noise = np.random.default_rng(0).standard_normal(len(chunk)) * _NOISE_RMS
    pcm = np.clip(chunk.astype(np.float64) * gain + noise, -1.0, 1.0)
    return np.round(pcm * 32767.0).astype("<i2").tobytes()


def _confidence(ascore: float, n_frames: int) -> float:
    """Rough probability that a decoded phone segment is right.

    Pocketsphinx's allphone search gives no posteriors (``Segment.prob`` is
    1), but its acoustic score per frame is relative to the best-scoring
    senone in that frame, so it measures how far the chosen phone is from
    the acoustically best one. The scale was fitted on espeak-ng speech so
    the value roughly tracks segment accuracy (about 0.7 for well-matching
    segments, 0.35 for poor ones).
    """
    per_frame = math.log(max(ascore, 1e-300)) / max(n_frames, 1)
    return float(np.clip(math.exp(_SCORE_SCALE * per_frame), _MIN_CONFIDENCE, 1.0))


def _decode_chunk(pcm: bytes) -> list[tuple[str, int, int, int]]:
    """Decode one chunk of decoder input into ``(phone, first frame, last frame, ascore)``.

    A fresh decoder per chunk (20 ms), so chunks decode the same in any
    process and order: each chunk's cepstral mean is its own (batch CMN).
    """
    decoder = _decoder()
    decoder.start_utt()
    # full_utt: cepstral mean normalisation over the whole chunk, not a running estimate.
    decoder.process_raw(pcm, full_utt=True)
    decoder.end_utt()
    return [(seg.word, seg.start_frame, seg.end_frame, seg.ascore) for seg in decoder.seg()]


def _start_decode(x: np.ndarray, hop: int) -> Callable[[], list[tuple[int, int, int, float]]]:
    """Start decoding ``x`` chunk by chunk; the returned call waits for the segments.

    Segments are ``(phone index, first frame, end frame, confidence)`` with
    frames ``hop`` samples on a grid starting at sample 0 and ``end``
    exclusive. Decoding takes about 45 ms per second of audio on one core
    and pocketsphinx holds the GIL, so several chunks decode in forked
    worker processes, one per thread (`avatar3d.runtime.worker_count`), while the caller
    computes other features.
    Where fork is unsafe or unavailable (not Linux, or inside a daemon
    process) chunks decode here, in order, with the same result.
    """
    bounds = _chunks(x, hop)
    inputs = [decoder_pcm(x[start:end], hop) for start, end in bounds]
    workers = worker_count(len(inputs))
    parallel = (
        workers > 1
        and sys.platform == "linux"
        and not multiprocessing.current_process().daemon
    )
    if parallel:
        pool = worker_pool(workers, "fork")
        pending = [pool.submit(_decode_chunk, pcm) for pcm in inputs]
        pool.shutdown(wait=False)  # workers exit once their chunks are done

    def segments():
        decoded = [p.result() for p in pending] if parallel else map(_decode_chunk, inputs)
        index = {name: i for i, name in enumerate(PHONES)}
        out = []
        for (start, _), chunk in zip(bounds, decoded):
            base = start // hop
            for word, first, last, ascore in chunk:
                phone = index.get(word, 0)  # noise fillers (+NSN+, +SPN+) are silence
                conf = _confidence(ascore, last - first + 1)
                out.append((phone, base + first, base + last + 1, conf))
        return out

    return segments


def _frame_distributions(segments: Iterable[tuple[int, int, int, float]], n: int) -> np.ndarray:
    """(n, P) float64 per-frame phone distributions; undecoded frames are silence.

    A segment of confidence c gives its phone c and spreads 1 - c evenly over
    all phones: there is no confusion model to say which phones it might
    have been instead.
    """
    dist = np.zeros((n, len(PHONES)))
    dist[:, 0] = 1.0
    for phone, first, end, conf in segments:
        first, end = max(first, 0), min(end, n)
        if end > first:
            dist[first:end] = (1.0 - conf) / len(PHONES)
            dist[first:end, phone] += conf
    return dist


def _integrate_rows(dist: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Average piecewise-constant frame values over intervals.

    Args:
        dist: (F, P) values; frame f spans [f, f + 1) in frame units.
        edges: (R + 1,) interval edges in frame units, increasing.

    Returns:
        (R, P) overlap-weighted mean of the frames each interval covers;
        parts of an interval outside [0, F) are left out.
    """
    cum = np.concatenate([np.zeros((1, dist.shape[1])), np.cumsum(dist, axis=0)])
    u = np.clip(edges, 0.0, len(dist))
    whole = np.minimum(np.floor(u).astype(np.int64), len(dist) - 1)
    area = cum[whole] + (u - whole)[:, None] * dist[whole]
    sums = np.diff(area, axis=0)
    return sums / np.maximum(sums.sum(axis=1, keepdims=True), 1e-12)


def phone_posteriors(
    samples: np.ndarray, sample_rate: int, num_frames: int, fps: float
) -> tuple[np.ndarray, list[str]]:
    """Phone posteriors from pocketsphinx phone recognition, two rows per video frame.

    The en-us acoustic model shipped with pocketsphinx decodes the audio in
    allphone mode (phone n-gram, no words) into a segmentation at 100 Hz;
    long audio is decoded in chunks of at most 30 s cut at pauses (see
    :func:`_chunks`). Each row's distribution is the overlap-weighted mean of
    the segments in the row's interval, each segment contributing a
    confidence-softened one-hot vector (see :func:`_confidence`), plus a
    floor of 1e-3 per phone. Speaker-independent but far from perfect: on
    synthetic speech roughly half of speech frames get a phone of the right
    place of articulation.

    Args:
        samples: (N,) float audio in [-1, 1], sample 0 at the start of video
            frame 0; (N, C) is averaged to mono.
        sample_rate: rate of ``samples`` in Hz; resampled to 16 kHz if different.
        num_frames: T, the number of video frames.
        fps: video frame rate in frames per second.

    Returns:
        ``(posteriors, names)``: (2T, P) float32 rows summing to 1, and the P
        phone names, :data:`PHONES` (``"SIL"`` first, then the 39 CMU phones).

    Raises:
        BadArgumentError: malformed audio, rate, frame count or fps.
    """
    num_frames, fps = _check_request(num_frames, fps)
    return _start_phones(prepare_audio(samples, sample_rate), num_frames, fps)()


def _start_phones(
    x: np.ndarray, num_frames: int, fps: float
) -> Callable[[], tuple[np.ndarray, list[str]]]:
    """Start :func:`phone_posteriors` on prepared audio; the returned call finishes it."""
    n_rows = ROWS_PER_FRAME * num_frames
    decoded = _start_decode(x, _DECODER_HOP) if n_rows and len(x) else (lambda: [])
    # Frame f's window starts at sample f * hop; it stands for the hop-long
    # span centred on the window centre.
    origin = (_DECODER_WINDOW - 1) / 2.0 - _DECODER_HOP / 2.0
    row_edges = np.arange(n_rows + 1) * SAMPLE_RATE / (ROWS_PER_FRAME * fps)
    n_frames = int(math.ceil((row_edges[-1] - origin) / _DECODER_HOP)) + 1

    def finish():
        if n_rows == 0:
            return np.zeros((0, len(PHONES)), dtype=np.float32), list(PHONES)
        dist = _frame_distributions(decoded(), n_frames)
        rows = _integrate_rows(dist, (row_edges - origin) / _DECODER_HOP)
        rows = (rows + _PHONE_FLOOR) / (1.0 + _PHONE_FLOOR * len(PHONES))
        return rows.astype(np.float32), list(PHONES)

    return finish


# --- registry ----------------------------------------------------------------


def _mel_encoder(x, sample_rate, num_frames, fps):
    return {"mel": log_mel(x, sample_rate, num_frames, fps)}


def _pitch_encoder(x, sample_rate, num_frames, fps):
    f0, voiced = pitch(x, sample_rate, num_frames, fps)
    return {"f0": f0, "voiced": voiced}


def _energy_encoder(x, sample_rate, num_frames, fps):
    return {"energy": energy(x, sample_rate, num_frames, fps)}


def _phone_encoder(x, sample_rate, num_frames, fps):
    finish = _start_phones(x, num_frames, fps)  # decoding runs in the background: return a call

    def result():
        post, names = finish()
        return {"phones": post, "phone_names": np.array(names, dtype=str)}

    return result


#: Encoder name -> encoder; :func:`extract` runs them by name.
ENCODERS: dict[str, Encoder] = {
    "mel": _mel_encoder,
    "pitch": _pitch_encoder,
    "energy": _energy_encoder,
    "phones": _phone_encoder,
}


def register_encoder(name: str, encoder: Encoder) -> None:
    """Add an encoder to :data:`ENCODERS`, replacing any of the same name.

    The contract: ``encoder(samples, sample_rate, num_frames, fps)`` gets
    (N,) float32 mono audio at 16 kHz (``sample_rate`` is always 16000),
    sample 0 at the start of video frame 0, the number of video frames T
    and the frame rate. It returns a dict of numpy arrays, or a call without
    arguments that returns it, if it started work in the background (as the
    phone decoder's worker processes do). Per-row features
    have a leading axis of length 2T, row ``2i + h`` describing half ``h``
    of video frame ``i`` (its analysis window centred on that half, as in
    this module), including when T is 0. Other entries (such as a list of
    names) may have any shape. Keys must not clash with other encoders'
    keys. For example a wav2vec2-style model at 50 Hz, loaded from a local
    folder, would interpolate its hidden states to the row centres
    ``(r + 0.5) / (2 * fps)`` seconds and return ``{"ssl": (2T, D)}``.

    Args:
        name: the name :func:`extract` selects it by.
        encoder: the callable described above.

    Raises:
        BadArgumentError: the name is empty or the encoder is not callable.
    """
    if not isinstance(name, str) or not name.strip():
        raise BadArgumentError(f"encoder name must be a non-empty string, got {name!r}")
    if not callable(encoder):
        raise BadArgumentError(f"encoder {name!r} must be callable, got {type(encoder).__name__}")
    ENCODERS[name] = encoder


def extract(
    samples: np.ndarray,
    sample_rate: int,
    num_frames: int,
    fps: float,
    encoders: Iterable[str] = ("phones", "mel", "pitch", "energy"),  # phones first: they decode in the background
) -> dict[str, np.ndarray]:
    """Run the named encoders on one clip.

    Args:
        samples: (N,) float audio in [-1, 1], sample 0 at the start of video
            frame 0; (N, C) is averaged to mono.
        sample_rate: rate of ``samples`` in Hz; resampled once to 16 kHz.
        num_frames: T, the number of video frames.
        fps: video frame rate in frames per second.
        encoders: names from :data:`ENCODERS`, started in this order.

    Returns:
        The encoders' outputs merged, plus ``"rows_per_frame"`` (2). With the
        default encoders: ``"mel"`` (2T, 80), ``"f0"`` (2T,) Hz, ``"voiced"``
        (2T,), ``"energy"`` (2T,), ``"phones"`` (2T, P) and ``"phone_names"``
        (P,) str.

    Raises:
        BadArgumentError: an unknown encoder name, or malformed audio, rate,
            frame count or fps.
        ValueError: two encoders return the same key (a programming error).
    """
    names = [encoders] if isinstance(encoders, str) else list(encoders)
    unknown = [n for n in names if n not in ENCODERS]
    if unknown:
        raise BadArgumentError(
            f"unknown audio encoder {', '.join(map(repr, unknown))}: "
            f"choose from {', '.join(sorted(ENCODERS))}"
        )
    num_frames, fps = _check_request(num_frames, fps)
    x = prepare_audio(samples, sample_rate)
    # Every encoder starts before any result is collected, so work one runs in the
    # background (phone decoding in worker processes) overlaps the others.
    started = [(name, ENCODERS[name](x, SAMPLE_RATE, num_frames, fps)) for name in names]
    out: dict[str, np.ndarray] = {}
    for name, result in started:
        if callable(result):
            result = result()
        clash = set(result) & (set(out) | {"rows_per_frame"})
        if clash:
            raise ValueError(f"encoder {name!r} returns keys already taken: {sorted(clash)}")
        out.update(result)
    out["rows_per_frame"] = ROWS_PER_FRAME
    return out
