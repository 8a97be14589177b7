"""Forced alignment: when each word and phone of a known transcript is spoken.

pocketsphinx's English acoustic model (trained on real speech) and the CMU pronouncing
dictionary that ship with it align the words, then their phones (`align`), at 100 frames
per second. Phones are ARPAbet without stress (``"P"``, ``"AH"``...), ``"SIL"`` for pauses.

Words the dictionary lacks get a pronunciation from ``pronounce``, a letter-to-sound
callable the caller supplies (the motion layer passes espeak-ng's). Audio is level
normalised and gets a fixed noise floor first, as for phone decoding
(`avatar3d.audio.features.decoder_pcm`).

A transcript that does not match its audio is refused (`TranscriptMismatch`): either no
path through the words reaches the end of the audio, or the aligned phones score below
what the acoustic model gives matching speech (`MIN_SCORE`).
"""

from __future__ import annotations

import functools
import math
import os
import re
from dataclasses import dataclass
from typing import Callable

import numpy as np

from avatar3d.audio.features import PHONES, SAMPLE_RATE, decoder_pcm, prepare_audio
from avatar3d.errors import BadInputError

FRAME_S = 0.01
"""pocketsphinx's frame step, seconds."""
HOP = 160
"""... in samples at 16 kHz."""
PHONE_WORD = "phone_"
"""Prefix of the dictionary words that stand for one phone each (``phone_p``)."""

MIN_SCORE = -3.6
"""Lowest mean acoustic score per speech frame (the natural log of pocketsphinx's segment
scores, which are relative to the best senone of each frame: 0 is the best the model could
do) of a transcript that matches its audio. On 9 real recordings of at least 7 speakers, matching transcripts scored -1.7 to -2.7 (-3.5 with the
corpus augmentation: noise, rooms, codecs); another recording's transcript, where it
aligned at all, -3.8 to -4.8; one with a third of its words wrong, -2.5 to -3.5 (mostly
refused by the word pass)."""


_NUMBER_WORDS = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
                 "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}


class TranscriptMismatch(BadInputError):
    """The transcript does not fit the audio (other words, or another recording)."""


@dataclass(frozen=True)
class Segment:
    """One aligned word or phone: its label and [start, end) in seconds from sample 0."""

    label: str
    start: float
    end: float


@dataclass(frozen=True)
class Alignment:
    """A transcript aligned to its audio.

    Attributes:
        words: the transcript's words in order (pauses left out).
        phones: contiguous ARPAbet phones covering the audio, ``"SIL"`` in pauses.
        score: mean acoustic score per speech frame, natural log (0 is the best the model
            could do; see `MIN_SCORE`).
    """

    words: list[Segment]
    phones: list[Segment]
    score: float


def _spell_number(n: int) -> list[str]:
    """Words of a whole number below a million ("1984" -> nineteen eighty four)."""
    if n < 20:
        return [_NUMBER_WORDS[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_NUMBER_WORDS[n % 10]] if n % 10 else [])
    if n < 1000:
        return [_NUMBER_WORDS[n // 100], "hundred"] + (_spell_number(n % 100) if n % 100 else [])
    if 1100 <= n < 2100 and n % 100 and n // 100 != 20:  # read as a year: nineteen eighty four
        return _spell_number(n // 100) + _spell_number(n % 100)
    return _spell_number(n // 1000) + ["thousand"] + (_spell_number(n % 1000) if n % 1000 else [])


def transcript_words(text: str) -> list[str]:
    """The words to align from a written transcript: lower case, punctuation dropped,
    numbers spelt out, hyphenated words split, apostrophes inside words kept."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    words = []
    for token in re.findall(r"[a-z0-9']+", text):
        token = token.strip("'")
        for part in re.findall(r"\d+|[a-z']+", token):
            if part.isdigit():
                words += _spell_number(int(part)) if len(part) <= 6 else [_NUMBER_WORDS[int(d)] for d in part]
            elif part:
                words.append(part)
    return words


@functools.lru_cache(maxsize=1)
def _phone_words():
    """The alignment decoder, its dictionary extended by one word per phone (`PHONE_WORD`)
    (loading takes about 0.4 s: once per process)."""
    import pocketsphinx

    model = pocketsphinx.get_model_path("en-us")
    decoder = pocketsphinx.Decoder(hmm=os.path.join(model, "en-us"), dict=os.path.join(model, "cmudict-en-us.dict"),
                                   samprate=SAMPLE_RATE, loglevel="FATAL", logfn=os.devnull)
    for n, phone in enumerate(PHONES[1:]):
        decoder.add_word(PHONE_WORD + phone.lower(), phone, n == len(PHONES) - 2)
    return decoder


def pronunciations(words: list[str], pronounce: Callable[[str], list[str]] | None = None) -> dict[str, list[str]]:
    """ARPAbet phones of each word (the dictionary's first pronunciation, else ``pronounce``'s).

    Raises:
        BadInputError: a word neither the dictionary nor ``pronounce`` knows.
    """
    decoder = _phone_words()
    known = {word: decoder.lookup_word(word) for word in dict.fromkeys(words)}
    missing = [word for word, phones in known.items() if phones is None]
    for n, word in enumerate(missing):
        phones = " ".join(pronounce(word) or []) if pronounce else ""
        if not phones:
            raise BadInputError(f"the word {word!r} is not in the pronouncing dictionary and no letter-to-sound "
                                "rule gave it phones; spell it as it sounds")
        decoder.add_word(word, phones, n == len(missing) - 1)  # the dictionary is rebuilt once, after the last
        known[word] = phones
    return {word: phones.split() for word, phones in known.items()}


def _run(decoder, pcm: bytes, text: str) -> list | None:
    """One alignment pass of ``text`` (words of the dictionary) over the whole audio: its
    segments, or None if no path through the words reaches the end of the audio."""
    decoder.set_align_text(text)
    try:
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
    except RuntimeError:
        return None
    return list(decoder.seg()) if decoder.hyp() is not None else None


def align(samples: np.ndarray, sample_rate: int, text: str,
          pronounce: Callable[[str], list[str]] | None = None, name: str = "the audio") -> Alignment:
    """Aligns the transcript ``text`` to speech.

    Two passes: the words (with optional pauses and fillers between them, and the
    dictionary's alternative pronunciations), then the phones of the pronunciations chosen,
    each phone a word of its own (pocketsphinx's own phone and state alignment fails on some
    recordings that the word pass aligns).

    Args:
        samples: (N,) float audio in [-1, 1] ((N, C) is mixed to mono), any rate.
        sample_rate: its rate in Hz.
        text: what is said, as written (`transcript_words` normalises it).
        pronounce: letter-to-sound for words missing from the dictionary: word -> ARPAbet
            phones (no stress digits).
        name: what to call the audio in errors (a file name).

    Returns:
        The `Alignment`; times in seconds from sample 0.

    Raises:
        TranscriptMismatch: the words cannot be aligned to the audio, or fit it too badly.
        BadInputError: an empty transcript, or a word without a pronunciation.
    """
    words = transcript_words(text)
    if not words:
        raise BadInputError(f"{name}: the transcript holds no words")
    pronunciations(words, pronounce)
    decoder = _phone_words()
    x = prepare_audio(samples, sample_rate)
    pcm = decoder_pcm(x, HOP)
    spoken = _run(decoder, pcm, " ".join(words))
    chosen = [segment.word for segment in spoken or [] if not segment.word.startswith(("<", "[", "+"))]
    phones = [phone for word in chosen for phone in decoder.lookup_word(word).split()]
    segments = _run(decoder, pcm, " ".join(PHONE_WORD + phone.lower() for phone in phones)) if spoken else None
    if segments is None:
        raise TranscriptMismatch(f"{name}: its transcript cannot be aligned to the audio (other words, or "
                                 "the wrong file?)")
    phones, score = _phone_segments(segments, len(x) / SAMPLE_RATE)
    if score < MIN_SCORE:
        raise TranscriptMismatch(f"{name}: its transcript fits the audio badly (acoustic score {score:.1f} per "
                                 f"frame, matching speech scores above {MIN_SCORE:.1f}): other words, or the "
                                 "wrong file?")
    word_times = [Segment(s.word.split("(")[0], s.start_frame * FRAME_S, (s.end_frame + 1) * FRAME_S)
                  for s in spoken if not s.word.startswith(("<", "[", "+"))]
    return Alignment(word_times, phones, score)


def _phone_segments(segments: list, duration: float) -> tuple[list[Segment], float]:
    """The phone pass's segments as contiguous phones over [0, ``duration``) seconds (pauses,
    fillers and the gaps between segments merged into ``SIL``), and their mean acoustic score
    per speech frame."""
    phones, score, frames = [], 0.0, 0
    for segment in segments:
        end = (segment.end_frame + 1) * FRAME_S
        label = segment.word[len(PHONE_WORD):].upper() if segment.word.startswith(PHONE_WORD) else "SIL"
        if label != "SIL":
            score += math.log(max(segment.ascore, 1e-300))
            frames += segment.end_frame + 1 - segment.start_frame
        start = phones[-1].end if phones else 0.0
        if phones and phones[-1].label == label == "SIL":
            phones[-1] = Segment(label, phones[-1].start, end)
        elif end > start:
            phones.append(Segment(label, start, end))
    if not phones or phones[-1].end < duration:
        phones.append(Segment("SIL", phones[-1].end if phones else 0.0, duration))
    return phones, score / max(frames, 1)
