"""Tests for avatar3d.rig.speech (espeak-ng through ctypes)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from avatar3d.errors import BadArgumentError
from avatar3d.rig import speech
from avatar3d.rig.speech import (
    ARTICULATION_CLASSES,
    PHONEME_CLASSES,
    Phoneme,
    Speech,
    VOICES,
    phoneme_class,
    synthesize,
)

PANGRAM = "The quick brown fox jumps over the lazy dog. How vexingly quick daft zebras jump!"


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if len(x) else 0.0


def _frame_rms(x: np.ndarray, hop: int) -> np.ndarray:
    n = len(x) // hop
    frames = x[: n * hop].astype(np.float64).reshape(n, hop)
    return np.sqrt(np.mean(frames * frames, axis=1))


@pytest.fixture(scope="module")
def pangram_speech() -> dict[str, Speech]:
    return {voice: synthesize(PANGRAM, voice) for voice in VOICES}


def test_import_does_not_load_library():
    code = (
        "import avatar3d.rig.speech, sys;"
        "maps = open('/proc/self/maps').read();"
        "sys.exit(1 if 'espeak' in maps else 0)"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr


def test_audio_is_plausible():
    s = synthesize("Hello world, this is a test of the avatar voice.")
    assert s.sample_rate == 22050
    assert s.samples.dtype == np.float32 and s.samples.ndim == 1
    assert np.all(np.abs(s.samples) <= 1.0)
    assert _rms(s.samples) > 0.02
    # 10 words at 160 wpm is ~3.75 s; allow for pauses and espeak's own timing.
    assert 1.5 < s.duration < 6.0


def test_rate_changes_duration():
    slow = synthesize(PANGRAM, words_per_minute=100)
    fast = synthesize(PANGRAM, words_per_minute=300)
    assert slow.duration > 1.8 * fast.duration


def test_phonemes_monotonic_and_cover_audio(pangram_speech):
    for voice, s in pangram_speech.items():
        ph = s.phonemes
        assert ph, voice
        assert ph[0].start == 0
        assert ph[-1].end == len(s.samples)
        for a, b in zip(ph, ph[1:]):
            assert a.start < a.end == b.start < b.end, (voice, a, b)
        assert all(isinstance(p, Phoneme) and p.label for p in ph)
        speech_phonemes = [p for p in ph if phoneme_class(p.label) != "silence"]
        assert len(speech_phonemes) > 40, voice


def test_multiple_sentences_stay_aligned():
    s = synthesize("One. Two! Three? Four, five.")
    silences = [p for p in s.phonemes if phoneme_class(p.label) == "silence"]
    # sentence pauses are real silence in the audio
    long_pauses = [p for p in silences if p.end - p.start > 0.1 * s.sample_rate]
    assert len(long_pauses) >= 3
    for p in long_pauses:
        assert _rms(s.samples[p.start + p.end >> 1 : p.end]) < 0.01
    # vowels are loud, whichever sentence they are in
    vowels = [p for p in s.phonemes if phoneme_class(p.label).endswith("vowel")]
    assert len(vowels) >= 5
    loud = _rms(s.samples)
    for p in vowels:
        if p.end - p.start > 0.04 * s.sample_rate:
            assert _rms(s.samples[p.start : p.end]) > 0.5 * loud, p


def test_papa_bilabials_contain_closure():
    s = synthesize("papa", "en-us")
    bilabial = [p for p in s.phonemes if phoneme_class(p.label) == "bilabial"]
    assert len(bilabial) == 2
    hop = s.sample_rate // 1000
    peak = np.percentile(_frame_rms(s.samples, hop), 90)
    for p in bilabial:
        r = _frame_rms(s.samples[p.start : p.end], hop)
        quiet = r < 0.05 * peak
        # a closure of at least 10 ms at the start, then a burst
        assert quiet[:10].all(), p
        assert r[quiet.argmin():].max() > 0.05 * peak
        assert not quiet.all()
    vowels = [p for p in s.phonemes if phoneme_class(p.label).endswith("vowel")]
    for v in vowels:
        assert _rms(s.samples[v.start : v.end]) > 2 * max(
            _rms(s.samples[p.start : p.end]) for p in bilabial
        )


def test_all_pangram_labels_are_classified(pangram_speech):
    for voice, s in pangram_speech.items():
        for p in s.phonemes:
            norm = speech._normalise(p.label)
            assert norm in PHONEME_CLASSES, (voice, p.label)
            assert PHONEME_CLASSES[norm] in ARTICULATION_CLASSES


def test_voices_differ_and_female_is_higher(pangram_speech):
    assert len(VOICES) >= 6
    hashes = {hash(s.samples.tobytes()) for s in pangram_speech.values()}
    assert len(hashes) == len(VOICES)

    def f0(s: Speech) -> float:
        vals = []
        for p in s.phonemes:
            if phoneme_class(p.label).endswith("vowel") and p.end - p.start > 800:
                x = s.samples[p.start : p.end].astype(np.float64)
                x -= x.mean()
                ac = np.correlate(x, x, "full")[len(x) - 1 :]
                lo, hi = s.sample_rate // 400, s.sample_rate // 60
                vals.append(s.sample_rate / (lo + np.argmax(ac[lo:hi])))
        return float(np.median(vals))

    assert f0(pangram_speech["en-us-f"]) > 1.5 * f0(pangram_speech["en-us"])
    assert f0(pangram_speech["en-gb-f"]) > 1.5 * f0(pangram_speech["en-gb"])


def test_deterministic():
    a = synthesize(PANGRAM, "en-us")
    synthesize("Something else entirely, to disturb any state.", "en-sc-f", 300, 80)
    b = synthesize(PANGRAM, "en-us")
    assert np.array_equal(a.samples, b.samples)
    assert a.phonemes == b.phonemes


def test_pitch_parameter():
    low = synthesize("aaah", pitch=10)
    high = synthesize("aaah", pitch=90)
    assert not np.array_equal(low.samples, high.samples)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(text):
    with pytest.raises(BadArgumentError, match="text is empty"):
        synthesize(text)


def test_unknown_voice_lists_voices():
    with pytest.raises(BadArgumentError) as info:
        synthesize("hello", voice="klingon")
    for name in VOICES:
        assert name in str(info.value)


@pytest.mark.parametrize("wpm", [79, 451, 0, -5, 1000])
def test_rate_out_of_range(wpm):
    with pytest.raises(BadArgumentError):
        synthesize("hello", words_per_minute=wpm)


@pytest.mark.parametrize("wpm", [80, 450])
def test_rate_limits_accepted(wpm):
    assert synthesize("hello", words_per_minute=wpm).duration > 0.1


@pytest.mark.parametrize("pitch", [-1, 101])
def test_pitch_out_of_range(pitch):
    with pytest.raises(BadArgumentError):
        synthesize("hello", pitch=pitch)


@pytest.mark.parametrize(
    "label, cls",
    [
        ("p", "bilabial"),
        ("'A:", "open_vowel"),
        (",aI", "open_vowel"),
        ("@", "mid_vowel"),
        ("i:", "close_vowel"),
        ("'oU", "rounded_vowel"),
        ("_:", "silence"),
        ("_", "silence"),
        ("T", "dental"),
        ("dZ", "postalveolar"),
        ("N", "velar"),
        ("w", "rounded_cons"),
        ("f", "labiodental"),
        ("r", "alveolar"),
        # fallbacks for labels not in the table
        ("'E:", "mid_vowel"),
        ("p#3", "bilabial"),
        ("_zz", "silence"),
        ("Q9", "velar"),
        ("eX", "mid_vowel"),
        ("%%", "silence"),
        ("", "silence"),
        ("Wq", "alveolar"),
        ("oXX", "rounded_vowel"),
    ],
)
def test_phoneme_class(label, cls):
    assert phoneme_class(label) == cls


def test_phoneme_class_total():
    odd = ["???", "~", "12", None]
    for label in list(PHONEME_CLASSES) + ["'" + k for k in PHONEME_CLASSES] + odd:
        assert phoneme_class(label) in ARTICULATION_CLASSES
    assert set(PHONEME_CLASSES.values()) == set(ARTICULATION_CLASSES)
