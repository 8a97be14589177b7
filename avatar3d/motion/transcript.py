"""Transcripts of speech: the words said, aligned to the audio, as the mouth rig's phonemes.

`avatar3d.audio.align` finds when each ARPAbet phone is spoken; here the phones become the
espeak-ng mnemonics the virtual actor's viseme rig reads (`avatar3d.rig.speech`), so real
speech with its transcript moves the rig exactly as synthesised speech does: closures on
p/b/m, the lower lip under the teeth on f/v, rounding. Words missing from the pronouncing
dictionary get espeak-ng's letter-to-sound phones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from avatar3d.errors import BadArgumentError, BadInputError


def read_transcript(text: str | None, text_file: Path | None) -> str | None:
    """The transcript given as ``--text`` or ``--text-file`` (UTF-8), or None.

    Raises:
        BadArgumentError: both given, or an empty one.
        BadInputError: the file cannot be read.
    """
    if text is not None and text_file is not None:
        raise BadArgumentError("give the transcript as --text or as --text-file, not both")
    if text_file is not None:
        try:
            text = Path(text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise BadInputError(f"--text-file {text_file}: cannot be read as UTF-8 text ({error})") from None
    if text is not None and not text.strip():
        raise BadArgumentError("the transcript is empty: give the words spoken, or leave --text out")
    return text


def aligned_phonemes(samples: np.ndarray, sample_rate: int, text: str, name: str = "the audio") -> list:
    """The transcript's phonemes, aligned to the speech.

    Args:
        samples: (N,) or (N, C) float audio, any rate.
        sample_rate: its rate in Hz.
        text: the words spoken.
        name: what to call the audio in errors.

    Returns:
        Contiguous `avatar3d.rig.speech.Phoneme` s covering the audio, positions in samples
        at ``sample_rate``; pauses are ``"_"``.

    Raises:
        avatar3d.audio.align.TranscriptMismatch: the transcript does not fit the audio.
    """
    from avatar3d.audio.align import align
    from avatar3d.rig.speech import Phoneme, from_arpabet, pronounce_arpabet

    alignment = align(samples, sample_rate, text, pronounce_arpabet, name)
    return [Phoneme(from_arpabet(p.label), int(round(p.start * sample_rate)), int(round(p.end * sample_rate)))
            for p in alignment.phones]
