"""Forced alignment of transcripts to real speech (the development set) and to synthetic speech."""

import numpy as np
import pytest

from avatar3d.audio.align import TranscriptMismatch, align, transcript_words
from avatar3d.audio.io import read_audio
from avatar3d.errors import BadInputError
from avatar3d.rig.speech import phoneme_class, pronounce_arpabet, synthesize

BILABIAL = {"P", "B", "M"}


def _labelled_phones(path):
    """(phone, start s, end s) from an HTS full-context label file (times in 100 ns)."""
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return [(label.split("-")[1].split("+")[0].upper(), int(start) / 1e7, int(end) / 1e7) for start, end, label in rows]


def test_arctic_bilabials_land_within_two_frames_of_their_labels(speech_dev):
    samples, rate = read_audio(speech_dev / "arctic_a0009.wav")
    alignment = align(samples, rate, (speech_dev / "arctic_a0009.txt").read_text(), pronounce_arpabet)
    labelled = [(s, e) for phone, s, e in _labelled_phones(speech_dev / "arctic_a0009.lab") if phone in BILABIAL]
    aligned = [(p.start, p.end) for p in alignment.phones if p.label in BILABIAL]
    assert len(aligned) == len(labelled) == 2  # sharPly, taBle
    frame = 1 / 25
    for (start, end), (true_start, true_end) in zip(aligned, labelled):
        assert abs(start - true_start) <= 2 * frame and abs(end - true_end) <= 2 * frame
    words = [w.label for w in alignment.words]
    assert words == transcript_words("He turned sharply, and faced Gregson across the table.")
    assert alignment.phones[0].start == 0 and alignment.phones[-1].end == pytest.approx(len(samples) / rate)
    assert all(a.end == b.start for a, b in zip(alignment.phones, alignment.phones[1:]))  # contiguous


def test_synthetic_speech_aligns_with_its_own_phoneme_timing():
    speech = synthesize("Please bring the puppy a map of the bumpy moon.", "en-us-f")
    alignment = align(speech.samples, speech.sample_rate, "Please bring the puppy a map of the bumpy moon.")
    true = [p.start / speech.sample_rate for p in speech.phonemes if phoneme_class(p.label) == "bilabial"]
    found = [p.start for p in alignment.phones if p.label in BILABIAL]
    assert len(found) == len(true) == 10
    error = np.abs(np.array(found) - np.array(true))  # espeak-ng's events are not acoustic truth either
    assert error.max() <= 2 / 25 and error.mean() < 0.02  # within 2 video frames, 20 ms on average


def test_a_transcript_of_other_words_is_refused(speech_dev):
    samples, rate = read_audio(speech_dev / "arctic_a0007.wav")
    with pytest.raises(TranscriptMismatch, match="arctic_a0007"):
        align(samples, rate, (speech_dev / "arctic_a0009.txt").read_text(), name="arctic_a0007.wav")
    with pytest.raises(TranscriptMismatch):
        align(np.zeros(rate * 2, np.float32), rate, "a whole sentence of words that nobody says here")


def test_words_missing_from_the_dictionary_take_letter_to_sound():
    speech = synthesize("Zorblax bumped the mopbot.", "en-us")
    with pytest.raises(BadInputError, match="zorblax"):
        align(speech.samples, speech.sample_rate, "Zorblax bumped the mopbot.")
    alignment = align(speech.samples, speech.sample_rate, "Zorblax bumped the mopbot.", pronounce_arpabet)
    assert [w.label for w in alignment.words] == ["zorblax", "bumped", "the", "mopbot"]


def test_transcripts_are_normalised_to_dictionary_words():
    assert transcript_words("It's 1984 -- the well-known \u201cBig\u201d Brother & 7%!") == [
        "it's", "nineteen", "eighty", "four", "the", "well", "known", "big", "brother", "and", "seven", "percent"]
    assert transcript_words("...") == []
