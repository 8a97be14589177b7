"""Speech synthesis with CMU's Festival and Flite voices, cut from or trained on real speakers.

Debian's ``festival`` with ``festvox-kallpc16k`` and ``festvox-kdlpc16k`` (diphone voices
concatenated from recordings of two American men) and ``festvox-us-slt-hts`` (an HTS voice
trained on CMU ARCTIC's slt, an American woman), and ``flite`` (statistical voices trained
on ARCTIC's rms, an American man, awb, a Scottish man, and slt; and the kal diphones) sound
closer to people than espeak-ng's formant synthesis, so a motion model trained on them
learns less of one synthesiser's timbre. Each call runs the program once (Festival with
``festival.scm``, about 0.2 s; Flite about 0.05 s) and reads the waveform and the
synthesiser's own segment timing, so the phonemes are exact, as espeak-ng's are. Phones
are the radio phone set (ARPAbet in lower case), reported as espeak-ng mnemonics
(`avatar3d.rig.speech.from_arpabet`).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import unicodedata
from pathlib import Path

import numpy as np

from avatar3d.errors import BadArgumentError, BadInputError

#: Our voice name -> (program, its name for the voice).
FESTIVAL_VOICES = {
    "festival-kal": ("festival", "kal_diphone"),
    "festival-ked": ("festival", "ked_diphone"),
    "festival-slt": ("festival", "cmu_us_slt_arctic_hts"),
    "flite-rms": ("flite", "rms"),
    "flite-awb": ("flite", "awb"),
    "flite-slt": ("flite", "slt"),
    "flite-kal": ("flite", "kal16"),
}
PACKAGES = "festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite"
"""The Debian packages of the voices (`make festival` installs them)."""

_SCRIPT = Path(__file__).with_name("festival.scm")
_NATURAL_WORDS_PER_MINUTE = 170  # Festival's own speaking rate, roughly
_SEMITONES_PER_PITCH = 8 / 100  # our pitch 0..100 -> -4..+4 semitones (diphone voices; HTS keeps its own)


def festival_available(program: str = "festival") -> bool:
    """Whether ``program`` (festival or flite) is on the PATH."""
    return shutil.which(program) is not None


def _speak(program: str, voice: str, text: str, stretch: float, semitones: float):
    """Runs the synthesiser once: (N,) samples, their rate, and (phone, end seconds) per segment."""
    from avatar3d.audio.io import read_audio

    with tempfile.TemporaryDirectory() as scratch:
        wav = Path(scratch) / "speech.wav"
        if program == "festival":
            command = ["festival", "--script", str(_SCRIPT), voice, str(wav), f"{stretch:.4f}", f"{semitones:.3f}", text]
        else:  # Flite's statistical voices keep their own pitch (the corpus augmentation transposes)
            command = ["flite", "-voice", voice, "--setf", f"duration_stretch={stretch:.4f}", "-psdur", "-t", text,
                       "-o", str(wav)]
        done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=120)
        if done.returncode != 0 or not wav.exists():
            raise BadInputError(f"voice {voice}: {program} failed ({(done.stderr or done.stdout).strip()[-200:]}); "
                                f"run `make festival` to install {PACKAGES}")
        samples, rate = read_audio(wav)
    if program == "festival":  # lines "SEG name end"
        ends = [(line.split()[1], float(line.split()[2])) for line in done.stdout.splitlines() if line.startswith("SEG ")]
    else:  # "pau:0.136 p:0.234 ..."
        ends = [(item.split(":")[0], float(item.split(":")[1])) for item in done.stdout.split() if ":" in item]
    return samples, rate, ends


def synthesize_festival(text: str, voice: str, words_per_minute: int = 160, pitch: int = 50):
    """Speaks ``text`` with a Festival or Flite voice.

    Args:
        text: what to say (reduced to ASCII: Festival reads bytes).
        voice: a key of `FESTIVAL_VOICES`.
        words_per_minute: speaking rate (about; Festival's durations are stretched).
        pitch: 0..100, 50 the voice's own (Festival's diphone voices only).

    Returns:
        `avatar3d.rig.speech.Speech`: 16 kHz (32 kHz for Festival's HTS voice) samples
        and contiguous phonemes as espeak-ng mnemonics.

    Raises:
        BadArgumentError: an unknown voice, or text with nothing to say.
        BadInputError: the program or the voice is not installed, or it failed.
    """
    from avatar3d.rig.speech import Phoneme, Speech, from_arpabet

    if voice not in FESTIVAL_VOICES:
        raise BadArgumentError(f"unknown Festival voice {voice!r}: choose one of {', '.join(FESTIVAL_VOICES)}")
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    if not any(c.isalnum() for c in ascii_text):  # the diphone voices crash on nothing to say
        raise BadArgumentError(f"nothing to say in {text!r}: give words")
    program, name = FESTIVAL_VOICES[voice]
    if not festival_available(program):
        raise BadInputError(f"voice {voice}: {program} is not installed; run `make festival` "
                            f"(apt-get install {PACKAGES}) or use espeak-ng voices")
    samples, rate, ends = _speak(program, name, ascii_text, _NATURAL_WORDS_PER_MINUTE / words_per_minute,
                                 (pitch - 50) * _SEMITONES_PER_PITCH)
    phonemes, start = [], 0
    for name, end in ends:
        stop = min(int(round(end * rate)), len(samples))
        if stop > start:
            phonemes.append(Phoneme("_" if name == "pau" else from_arpabet(name), start, stop))
            start = stop
    if start < len(samples):
        phonemes.append(Phoneme("_", start, len(samples)))
    return Speech(samples=np.asarray(samples, np.float32), sample_rate=rate, phonemes=phonemes)
