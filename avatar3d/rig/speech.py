"""Speech synthesis with espeak-ng, called through ctypes.

The shared library and its data come from the ``espeakng_loader`` package.
Importing this module loads nothing: each :func:`synthesize` call loads a
private instance of the library, speaks, and unloads it again (see
:class:`_Engine` for why), serialised by a module lock.

espeak-ng reports a phoneme event for every phoneme it speaks. Each event
carries ``sample``, the index of the phoneme's first sample counted from the
start of the current ``espeak_Synth`` call (``audio_position`` is the same
instant truncated to whole milliseconds), so it is used as the time base.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass, field

import numpy as np

from avatar3d.audio.features import PHONES
from avatar3d.errors import BadArgumentError

__all__ = [
    "SENTENCES",
    "Phoneme",
    "Speech",
    "VOICES",
    "PHONEME_CLASSES",
    "ARTICULATION_CLASSES",
    "phoneme_class",
    "synthesize",
]

#: Harvard sentences (IEEE 1969, public domain): phonetically balanced English; the virtual
#: actor's lines and the motion models' held-out set.
SENTENCES = (
    "The birch canoe slid on the smooth planks.",
    "Glue the sheet to the dark blue background.",
    "It's easy to tell the depth of a well.",
    "These days a chicken leg is a rare dish.",
    "Rice is often served in round bowls.",
    "The juice of lemons makes fine punch.",
    "The box was thrown beside the parked truck.",
    "The hogs were fed chopped corn and garbage.",
    "Four hours of steady work faced us.",
    "A large size in stockings is hard to sell.",
    "The boy was there when the sun rose.",
    "A rod is used to catch pink salmon.",
    "The source of the huge river is the clear spring.",
    "Kick the ball straight and follow through.",
    "Help the woman get back to her feet.",
    "A pot of tea helps to pass the evening.",
    "Smoky fires lack flame and heat.",
    "The soft cushion broke the man's fall.",
    "The salt breeze came across from the sea.",
    "The girl at the booth sold fifty bonds.",
)

MIN_WORDS_PER_MINUTE = 80
MAX_WORDS_PER_MINUTE = 450

#: Our voice name -> espeak-ng voice spec ("language+variant").
VOICES: dict[str, str] = {
    "en-us": "en-us",  # US English, default male
    "en-us-f": "en-us+f3",  # US English, female
    "en-us-f2": "en-us+f2",  # US English, second female
    "en-us-m2": "en-us+m2",  # US English, lower male
    "en-gb": "en",  # British English (espeak-ng "en" = en-gb), male
    "en-gb-f": "en+f2",  # British English, female
    "en-rp": "en-gb-x-rp",  # Received Pronunciation, male
    "en-sc": "en-gb-scotland",  # Scottish English, male
    "en-sc-f": "en-gb-scotland+f4",  # Scottish English, female
    "en-us-m7": "en-us+m7",  # US English, deep male
    "en-us-f4": "en-us+f4",  # US English, third female
    "en-us-klatt": "en-us+klatt",  # US English, Klatt's formant synthesiser
    "en-gb-m3": "en+m3",  # British English, second male
}

ARTICULATION_CLASSES: tuple[str, ...] = (
    "silence",
    "bilabial",
    "labiodental",
    "dental",
    "alveolar",
    "postalveolar",
    "velar",
    "rounded_cons",
    "open_vowel",
    "mid_vowel",
    "close_vowel",
    "rounded_vowel",
)


def _classes(spec: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for cls, labels in spec.items():
        for label in labels.split():
            out[label] = cls
    return out


#: espeak-ng phoneme mnemonic (without stress marks) -> articulation class.
#: Covers the English phoneme tables (en, en-us, en-rp, en-sc, en-n, en-wm,
#: en-wi, en-us-nyc) and the shared base tables they build on.
PHONEME_CLASSES: dict[str, str] = _classes(
    {
        "silence": "_ _: _:: _! _| _^_ _;_ _X1 || - :",
        "bilabial": "p b m m- B p- ph",
        "labiodental": "f v v#",
        "dental": "T D t[ d[",
        "alveolar": (
            "t d n s z l r t# d# t2 d2 z# z/2 s2 t- ts dz n- l- r- r/ l/ l/2 l/3 l# "
            "L L/ l^ R R2 R3 r. l. n. n^ * ** #X1 @L r\""
        ),
        "postalveolar": "S Z tS dZ tS; dZ; S; Z; s; z; s. z. C J^",
        "velar": "k g N N- h ? x X q Q Q^ Q\" c J k- kh k# c2",
        "rounded_cons": "w w# w2",
        "open_vowel": "a a# a2 aa a/ a#2 A: A@ A# A~ aI aI@ aI3 aI2 aU aU@ #a",
        "mid_vowel": (
            "e E E# E2 e: e# @ @2 @5 @- @# #@ 3 3: V VR eI e@ EI eU #e"
        ),
        "close_vowel": "i i: I I2 I# I2# IR i@ i@3 iU j ; #i",
        "rounded_vowel": (
            "u u: U U@ o o: O O: O2 O@ o@ O~ OI oI oU oU# 0 0# 02 uI y Y #o #u"
        ),
    }
)

_VOWEL_INITIALS = set("aeiouAEIOUV@03yY")


def _normalise(label: str) -> str:
    """Strip stress and syllable marks espeak-ng prefixes to a mnemonic."""
    return label.strip().lstrip("'\",%=")


def phoneme_class(label: str) -> str:
    """Articulation class of an espeak-ng phoneme mnemonic; never raises.

    The label is stripped of stress marks (``'``, ``,``, ``%``, ``=``) and looked
    up in :data:`PHONEME_CLASSES`. Unknown labels fall back to their leading
    characters, then to ``"mid_vowel"`` for vowel-like labels and
    ``"alveolar"`` for anything else.

    Args:
        label: a mnemonic such as ``"'aI"``, ``"p"``, ``"_:"``.

    Returns:
        One of :data:`ARTICULATION_CLASSES`.
    """
    if not isinstance(label, str):
        return "alveolar"
    norm = _normalise(label)
    if not norm:
        return "silence"
    if norm in PHONEME_CLASSES:
        return PHONEME_CLASSES[norm]
    if norm.startswith("_"):
        return "silence"
    # Drop length marks and variant suffixes ("#", digits, "/", ";", ":").
    trimmed = norm.rstrip(":#/;0123456789") or norm
    if trimmed in PHONEME_CLASSES:
        return PHONEME_CLASSES[trimmed]
    for n in range(min(len(norm), 3) - 1, 0, -1):
        if norm[:n] in PHONEME_CLASSES:
            return PHONEME_CLASSES[norm[:n]]
    return "mid_vowel" if norm[0] in _VOWEL_INITIALS else "alveolar"


@dataclass(frozen=True)
class Phoneme:
    """One spoken phoneme.

    Attributes:
        label: espeak-ng phoneme mnemonic as reported, e.g. ``"p"``, ``"'aI"``,
            ``"@"``, ``"_:"``; may carry stress marks (see :func:`phoneme_class`).
        start: first sample, at :attr:`Speech.sample_rate`.
        end: one past the last sample.
    """

    label: str
    start: int
    end: int


@dataclass
class Speech:
    """Synthesised speech.

    Attributes:
        samples: (N,) float32 samples in [-1, 1].
        sample_rate: rate in Hz (espeak-ng's native 22050).
        phonemes: phonemes in time order, contiguous, covering ``[0, N)``;
            pauses are silence labels (``"_"``, ``"_:"``...).
    """

    samples: np.ndarray
    sample_rate: int
    phonemes: list[Phoneme] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / float(self.sample_rate)


# --- espeak-ng C API (speak_lib.h) -------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_espeakINITIALIZE_PHONEME_EVENTS = 0x0001
_espeakINITIALIZE_DONT_EXIT = 0x8000
_POS_CHARACTER = 1
_espeakCHARS_UTF8 = 1
_espeakENDPAUSE = 0x1000
_espeakRATE = 1
_espeakPITCH = 3
_EV_LIST_TERMINATED = 0
_EV_PHONEME = 7
_BUFFER_MS = 200


class _EventId(ctypes.Union):
    _fields_ = [
        ("number", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("string", ctypes.c_char * 8),
    ]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class _Engine:
    """One freshly loaded espeak-ng instance, used for a single utterance.

    espeak-ng keeps synthesis state in C statics (pitch flutter phase,
    automatic gain, echo buffer...) that ``espeak_Terminate`` does not reset,
    so a second utterance in the same library instance comes out slightly
    different from the first. To make output a pure function of the input,
    every utterance gets its own instance: a private copy of the shared
    library is loaded, used once, then unloaded (about 10 ms).
    """

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = _load_private_library(espeakng_loader.get_library_path())
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        lib.espeak_Terminate.argtypes = []
        lib.espeak_Terminate.restype = ctypes.c_int

        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            _BUFFER_MS,
            data_path,
            _espeakINITIALIZE_PHONEME_EVENTS | _espeakINITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            self.close(terminate=False)
            raise RuntimeError(f"espeak-ng failed to initialise (data at {data_path.decode()!r})")
        self.sample_rate = int(rate)
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _SynthCallback(self._on_synth)  # must outlive the C calls
        lib.espeak_SetSynthCallback(self._callback)

    def close(self, terminate: bool = True) -> None:
        lib, self.lib = self.lib, None
        if lib is None:
            return
        if terminate:
            lib.espeak_Terminate()
        _unload_library(lib)

    def _on_synth(self, wav, numsamples, events) -> int:
        try:
            if numsamples > 0 and wav:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(numsamples,)).copy())
            if events:
                i = 0
                while True:
                    ev = events[i]
                    if ev.type == _EV_LIST_TERMINATED:
                        break
                    if ev.type == _EV_PHONEME:
                        label = ev.id.string.decode("ascii", errors="replace")
                        self._events.append((int(ev.sample), label))
                    i += 1
        except Exception:  # never let an exception unwind through C
            return 1
        return 0

    def speak(self, text: str, voice_spec: str, rate: int, pitch: int):
        """Synthesise ``text``; returns (int16 samples, [(start sample, label)])."""
        lib = self.lib
        err = lib.espeak_SetVoiceByName(voice_spec.encode())
        if err != 0:
            raise RuntimeError(f"espeak-ng could not select voice {voice_spec!r} (error {err})")
        lib.espeak_SetParameter(_espeakRATE, int(rate), 0)
        lib.espeak_SetParameter(_espeakPITCH, int(pitch), 0)
        data = text.encode("utf-8")
        self._chunks = []
        self._events = []
        err = lib.espeak_Synth(
            data,
            len(data) + 1,
            0,
            _POS_CHARACTER,
            0,
            _espeakCHARS_UTF8 | _espeakENDPAUSE,
            None,
            None,
        )
        if err != 0:
            raise RuntimeError(f"espeak-ng synthesis failed (error {err})")
        lib.espeak_Synchronize()
        chunks, events = self._chunks, self._events
        self._chunks, self._events = [], []
        pcm = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
        return pcm, events


def _load_private_library(path: str) -> ctypes.CDLL:
    """Load a private copy of the shared library at ``path``.

    A copy under its own file name is a separate instance even if another
    part of the process has loaded espeak-ng itself, and it is truly unloaded
    by :func:`_unload_library`. The copy is deleted as soon as it is mapped.
    Falls back to ``path`` itself where a copy cannot be loaded (e.g. a
    ``noexec`` temp folder).
    """
    import os
    import shutil
    import tempfile

    try:
        fd, tmp = tempfile.mkstemp(prefix="avatar3d-espeak-", suffix=".so")
        try:
            with open(path, "rb") as src, os.fdopen(fd, "wb") as dst:
                shutil.copyfileobj(src, dst)
            return ctypes.CDLL(tmp, mode=ctypes.RTLD_LOCAL)
        finally:
            os.unlink(tmp)
    except OSError:
        return ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)


def _unload_library(lib: ctypes.CDLL) -> None:
    import _ctypes

    try:
        _ctypes.dlclose(lib._handle)
    except (OSError, AttributeError):  # pragma: no cover - non-POSIX
        pass


_lock = threading.Lock()


#: Stops and affricates (espeak-ng phoneme types "stop" and "vstop").
_STOPS = frozenset(
    "p b t d k g t# t2 d# d2 tS dZ tS; dZ; ? c J q t[ d[ * ts dz p- ph t- k- kh k# c2".split()
)
_MAX_CLOSURE_S = 0.08
_MIN_CLOSURE_S = 0.005


def _closure_starts(
    samples: np.ndarray, sample_rate: int, marks: list[tuple[int, str]]
) -> list[tuple[int, str]]:
    """Move each stop's start back over the silent closure that precedes it.

    When espeak-ng gives a stop a pre-pause (e.g. word-internal after a
    stressed vowel, as in "papa"), it generates that closure (the near-silent
    gap while the lips or tongue are shut) *before* emitting the phoneme
    event, so the event sits at the release burst and the closure would count
    as the tail of the previous phoneme. For lip sync the closure belongs to
    the stop. It is found as the run of quiet 1 ms frames ending at the event,
    at most 80 ms long and never more than half of the previous phoneme.
    (Where the closure is part of the stop's own sound it already follows the
    event and nothing moves.)
    """
    hop = max(1, sample_rate // 1000)
    n_frames = len(samples) // hop
    if n_frames == 0 or len(marks) < 2:
        return marks
    frames = samples[: n_frames * hop].astype(np.float64).reshape(n_frames, hop)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loud = rms[rms > 1e-4]
    if loud.size == 0:
        return marks
    threshold = 0.06 * float(np.percentile(loud, 90))
    max_frames = int(_MAX_CLOSURE_S * sample_rate) // hop
    min_frames = max(1, int(_MIN_CLOSURE_S * sample_rate) // hop)
    out = list(marks)
    for i in range(1, len(out)):
        start, label = out[i]
        if _normalise(label) not in _STOPS:
            continue
        prev_start = out[i - 1][0]
        limit = max(prev_start + (start - prev_start) // 2, start - max_frames * hop)
        f = start // hop  # first frame at or after the event
        k = 0
        while f - k - 1 >= 0 and (f - k - 1) * hop >= limit and rms[f - k - 1] < threshold:
            k += 1
        if k >= min_frames:
            out[i] = ((f - k) * hop, label)
    return out


def _build_phonemes(
    events: list[tuple[int, str]],
    n_samples: int,
    samples: np.ndarray | None = None,
    sample_rate: int = 0,
) -> list[Phoneme]:
    """Turn (start sample, label) events into contiguous phonemes over [0, n)."""
    marks: list[tuple[int, str]] = []
    for start, label in events:
        start = min(max(int(start), 0), n_samples)
        if marks and start < marks[-1][0]:
            start = marks[-1][0]  # guard: keep time order
        if marks and start == marks[-1][0]:
            marks[-1] = (start, label)  # the earlier one would be empty
        else:
            marks.append((start, label))
    if n_samples > 0 and (not marks or marks[0][0] > 0):
        marks.insert(0, (0, "_"))
    if samples is not None and sample_rate > 0:
        marks = _closure_starts(samples, sample_rate, marks)
    phonemes = []
    for i, (start, label) in enumerate(marks):
        end = marks[i + 1][0] if i + 1 < len(marks) else n_samples
        if end > start:
            phonemes.append(Phoneme(label, start, end))
    return phonemes


def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def synthesize(
    text: str, voice: str = "en-us", words_per_minute: int = 160, pitch: int = 50
) -> Speech:
    """Speak ``text`` with espeak-ng.

    Args:
        text: what to say (UTF-8; several sentences are fine).
        voice: a key of :data:`VOICES`, or of
            `avatar3d.rig.festival.FESTIVAL_VOICES` (Festival's voices, if installed).
        words_per_minute: speaking rate, 80..450.
        pitch: base pitch, 0..100 (50 is the voice's normal pitch).

    Returns:
        The audio (22050 Hz mono float32; Festival's at its own rate) with its
        phoneme timing. The same arguments always give identical samples.

    Raises:
        BadArgumentError: empty text, unknown voice, or rate/pitch out of range.
    """
    if not isinstance(text, str) or not text.strip():
        raise BadArgumentError("text is empty: give a sentence to speak")
    from avatar3d.rig.festival import FESTIVAL_VOICES, synthesize_festival

    if voice not in VOICES and voice not in FESTIVAL_VOICES:
        raise BadArgumentError(
            f"unknown voice {voice!r}: choose one of {', '.join(sorted(VOICES) + list(FESTIVAL_VOICES))}"
        )
    if not _is_int(words_per_minute) or not (
        MIN_WORDS_PER_MINUTE <= words_per_minute <= MAX_WORDS_PER_MINUTE
    ):
        raise BadArgumentError(
            "words per minute must be an integer in "
            f"{MIN_WORDS_PER_MINUTE}..{MAX_WORDS_PER_MINUTE}, got {words_per_minute!r}"
        )
    if not _is_int(pitch) or not 0 <= pitch <= 100:
        raise BadArgumentError(f"pitch must be an integer in 0..100, got {pitch!r}")
    text = text.replace("\x00", " ")
    if voice in FESTIVAL_VOICES:
        return synthesize_festival(text, voice, int(words_per_minute), int(pitch))

    with _lock:
        engine = _Engine()
        try:
            pcm, events = engine.speak(text, VOICES[voice], int(words_per_minute), int(pitch))
            rate = engine.sample_rate
        finally:
            engine.close()

    samples = pcm.astype(np.float32) / 32768.0
    phonemes = _build_phonemes(events, len(samples), samples, rate)
    return Speech(samples=samples, sample_rate=rate, phonemes=phonemes)


# --- ARPAbet (forced alignment of real speech) ---------------------------------

#: ARPAbet phone (pocketsphinx's dictionary, no stress digits) -> the espeak-ng mnemonic of
#: the same sound, so aligned real speech drives the mouth rig as synthesised speech does.
ARPABET_TO_ESPEAK: dict[str, str] = {
    "SIL": "_", "AA": "A:", "AE": "a", "AH": "V", "AO": "O:", "AW": "aU", "AY": "aI", "B": "b", "CH": "tS",
    "D": "d", "DH": "D", "EH": "E", "ER": "3:", "EY": "eI", "F": "f", "G": "g", "HH": "h", "IH": "I",
    "IY": "i:", "JH": "dZ", "K": "k", "L": "l", "M": "m", "N": "n", "NG": "N", "OW": "oU", "OY": "OI",
    "P": "p", "R": "r", "S": "s", "SH": "S", "T": "t", "TH": "T", "UH": "U", "UW": "u:", "V": "v",
    "W": "w", "Y": "j", "Z": "z", "ZH": "Z",
    # Festival's radio phone set adds these: schwa, r-coloured schwa, flap, syllabic l/m/n.
    "AX": "@", "AXR": "3", "DX": "t", "EL": "@L", "EM": "m", "EN": "n", "HV": "h", "NX": "n",
}  # fmt: skip

#: espeak-ng English mnemonics that ARPAbet spells differently or as two phones.
_ESPEAK_TO_ARPABET_EXTRA: dict[str, tuple[str, ...]] = {
    "@": ("AH",), "@2": ("AH",), "@5": ("AH",), "a#": ("AH",), "3": ("ER",), "@L": ("AH", "L"),
    "I#": ("IH",), "I2": ("IH",), "i": ("IY",), "e@": ("EH", "R"), "i@": ("IY", "R"), "i@3": ("IY", "R"),
    "U@": ("UH", "R"), "o@": ("AO", "R"), "O@": ("AO", "R"), "A@": ("AA", "R"), "aI@": ("AY", "ER"),
    "aU@": ("AW", "ER"), "0": ("AA",), "A": ("AA",), "o": ("OW",), "u": ("UW",), "e": ("EH",), "t#": ("T",),
    "d#": ("D",), "t2": ("T",), "n-": ("N",), "l-": ("L",), "m-": ("M",), "r-": ("R",), "x": ("K",),
}  # fmt: skip

_ESPEAK_TO_ARPABET = {espeak: arpabet for arpabet, espeak in ARPABET_TO_ESPEAK.items() if arpabet in PHONES[1:]}

#: One ARPAbet phone per articulation class, for espeak-ng mnemonics in neither table.
_CLASS_TO_ARPABET = {
    "bilabial": "B", "labiodental": "F", "dental": "TH", "alveolar": "D", "postalveolar": "SH", "velar": "K",
    "rounded_cons": "W", "open_vowel": "AA", "mid_vowel": "AH", "close_vowel": "IH", "rounded_vowel": "UW",
}  # fmt: skip


def from_arpabet(label: str) -> str:
    """The espeak-ng mnemonic of an ARPAbet phone (stress digits ignored; unknown -> silence)."""
    return ARPABET_TO_ESPEAK.get(label.rstrip("012").upper(), "_")


def to_arpabet(label: str) -> tuple[str, ...]:
    """ARPAbet phones of an espeak-ng mnemonic (stress marks ignored); () for silence."""
    norm = _normalise(label)
    if norm in _ESPEAK_TO_ARPABET_EXTRA:
        return _ESPEAK_TO_ARPABET_EXTRA[norm]
    if norm in _ESPEAK_TO_ARPABET:
        return (_ESPEAK_TO_ARPABET[norm],)
    cls = phoneme_class(label)
    return () if cls == "silence" else (_CLASS_TO_ARPABET[cls],)


def pronounce_arpabet(word: str) -> list[str]:
    """A word's ARPAbet phones by espeak-ng's letter-to-sound rules (US English), for words
    missing from a pronouncing dictionary (names, coinages)."""
    speech = synthesize(word, "en-us")
    return [arpabet for p in speech.phonemes for arpabet in to_arpabet(p.label)]
