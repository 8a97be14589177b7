"""Festival's and Flite's voices: real-speaker timbre with exact segment timing (skipped where the program is
not installed; CI installs both)."""

import numpy as np
import pytest

from avatar3d.errors import BadArgumentError
from avatar3d.rig.festival import FESTIVAL_VOICES, festival_available
from avatar3d.rig.speech import phoneme_class, synthesize


def installed(voice: str) -> bool:
    return festival_available(FESTIVAL_VOICES[voice][0])


@pytest.mark.parametrize("voice", sorted(FESTIVAL_VOICES))
def test_festival_voices_give_contiguous_phonemes_with_quiet_closures(voice):
    if not installed(voice):
        pytest.skip(f"{FESTIVAL_VOICES[voice][0]} is not installed (make festival)")
    speech = synthesize("Please bring the puppy a map of the bumpy moon.", voice)
    assert speech.sample_rate in (16000, 32000) and np.abs(speech.samples).max() > 0.05
    assert speech.phonemes[0].start == 0 and speech.phonemes[-1].end == len(speech.samples)
    assert all(a.end == b.start for a, b in zip(speech.phonemes, speech.phonemes[1:]))
    classes = [phoneme_class(p.label) for p in speech.phonemes]
    assert classes.count("bilabial") == 10 and classes[0] == classes[-1] == "silence"
    rms = lambda p: float(np.sqrt(np.mean(speech.samples[p.start:p.end] ** 2)))  # noqa: E731
    vowels = np.median([rms(p) for p, c in zip(speech.phonemes, classes) if c.endswith("vowel")])
    stops = [p for p in speech.phonemes if p.label in ("p", "b")]
    # a stop's closure is quiet: its quietest 20 ms sits far below the vowels' level
    quiet = [min(np.sqrt(np.mean(speech.samples[s : s + speech.sample_rate // 50] ** 2))
                 for s in range(p.start, max(p.start + 1, p.end - speech.sample_rate // 50), speech.sample_rate // 200))
             for p in stops]
    assert np.median(quiet) < 0.2 * vowels


@pytest.mark.skipif(not installed("festival-kal"), reason="Festival is not installed (make festival)")
def test_rate_moves_the_diphone_voice():
    slow = synthesize("Bumpy maps.", "festival-kal", words_per_minute=120)
    fast = synthesize("Bumpy maps.", "festival-kal", words_per_minute=240)
    assert slow.duration > 1.5 * fast.duration


def test_nothing_to_say_is_refused():  # refused before any program runs
    with pytest.raises(BadArgumentError):
        synthesize("... !!", "festival-kal")
