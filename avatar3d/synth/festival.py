"""Speech synthesis with Festival's voices cut from, or trained on, real speakers.

Debian's ``festival`` with ``festvox-kallpc16k`` and ``festvox-kdlpc16k`` (diphone voices
concatenated from recordings of two American men) and ``festvox-us-slt-hts`` (an HTS voice
trained on CMU ARCTIC's slt, an American woman) sound closer to people than espeak-ng's
formant synthesis, so a motion model trained on them learns less of one synthesiser's
timbre. Each call runs ``festival --script festival.scm`` (about 0.2 s) and reads the
waveform and Festival's own segment timing (its Segment relation), so the phonemes are
exact, as espeak-ng's are. Phones are Festival's radio phone set (ARPAbet in lower case),
reported as espeak-ng mnemonics (`avatar3d.synth.speech.from_arpabet`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from avatar3d.errors import BadArgumentError, BadInputError

#: Our voice name -> Festival's.
FESTIVAL_VOICES = {
    "festival-kal": "kal_diphone",
    "festival-ked": "ked_diphone",
    "festival-slt": "cmu_us_slt_arctic_hts",
}
PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
"""The Debian packages of the voices (`make festival` installs them)."""

_SCRIPT = Path(__file__).with_name("festival.scm")
_NATURAL_WORDS_PER_MINUTE = 170  # Festival's own speaking rate, roughly
_SEMITONES_PER_PITCH = 8 / 100  # our pitch 0..100 -> -4..+4 semitones (diphone voices; HTS keeps its own)


def festival_available() -> bool:
    """Whether the ``festival`` program is on the PATH."""
    return shutil.which("festival") is not None


def synthesize_festival(text: str, voice: str, words_per_minute: int = 160, pitch: int = 50):
    """Speaks ``text`` with a Festival voice.

    Args:
        text: what to say (reduced to ASCII: Festival reads bytes).
        voice: a key of `FESTIVAL_VOICES`.
        words_per_minute: speaking rate (about; Festival's durations are stretched).
        pitch: 0..100, 50 the voice's own (diphone voices only).

    Returns:
        `avatar3d.synth.speech.Speech`: 16 kHz (diphone) or 32 kHz (HTS) samples and
        contiguous phonemes as espeak-ng mnemonics.

    Raises:
        BadArgumentError: an unknown voice, or text with nothing to say.
        BadInputError: Festival or the voice is not installed, or it failed.
    """
    from avatar3d.audio.wav import read_wav
    from avatar3d.synth.speech import Phoneme, Speech, from_arpabet

    if voice not in FESTIVAL_VOICES:
        raise BadArgumentError(f"unknown Festival voice {voice!r}: choose one of {', '.join(FESTIVAL_VOICES)}")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    if not any(c.isalnum() for c in ascii_text):  # the diphone voices crash on nothing to say
        raise BadArgumentError(f"nothing to say in {text!r}: give words")
    if not festival_available():
        raise BadInputError(f"voice {voice}: Festival is not installed; run `make festival` "
                            f"(apt-get install {PACKAGES}) or use espeak-ng voices")
    stretch = _NATURAL_WORDS_PER_MINUTE / words_per_minute
    semitones = (pitch - 50) * _SEMITONES_PER_PITCH
    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech.wav"
        done = subprocess.run(["festival", "--script", str(_SCRIPT), FESTIVAL_VOICES[voice], str(wav),
                               f"{stretch:.4f}", f"{semitones:.3f}", ascii_text],
                              capture_output=True, text=True, errors="replace", timeout=120)
        if done.returncode != 0 or not wav.exists():
            raise BadInputError(f"voice {voice}: Festival failed ({(done.stderr or done.stdout).strip()[-200:]}); "
                                f"is {PACKAGES.split()[-1] if voice == 'festival-slt' else PACKAGES} installed?")
        samples, rate = read_wav(wav)
    ends = [(line.split()[1], float(line.split()[2])) for line in done.stdout.splitlines() if line.startswith("SEG ")]
    phonemes, start = [], 0
    for name, end in ends:
        stop = min(int(round(end * rate)), len(samples))
        if stop > start:
            phonemes.append(Phoneme("_" if name == "pau" else from_arpabet(name), start, stop))
            start = stop
    if start < len(samples):
        phonemes.append(Phoneme("_", start, len(samples)))
    return Speech(samples=np.asarray(samples, np.float32), sample_rate=rate, phonemes=phonemes)
