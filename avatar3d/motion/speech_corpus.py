"""Corpora of real speech with transcripts: exact training data without any video.

`avatar3d train motion --corpus speech:DIR` reads recordings with their transcripts, in
any of three layouts (searched at any depth):

- plain: ``NAME.wav`` (or .flac, .mp3, .ogg, .m4a, .opus) beside ``NAME.txt``;
- LibriSpeech: ``SPEAKER-CHAPTER.trans.txt`` with lines ``UTTERANCE-ID TEXT``, beside
  ``UTTERANCE-ID.flac``;
- LJSpeech: ``metadata.csv`` with lines ``ID|text|normalised text``, beside ``wavs/ID.wav``.

Each recording's transcript is force-aligned (`avatar3d.motion.transcript`) and the virtual
actor's mouth rig speaks the aligned phonemes on a face of random proportions, as in the
synthetic corpus: the voice is real, the lips exact. ``copies`` - 1 more utterances of each
recording go through `avatar3d.audio.augment` (the phoneme times follow its tempo). A
recording whose transcript does not fit its audio, or that cannot be read, gets a
``.failed`` file with the reason and the run goes on. Recordings are prepared in worker
processes into ``corpus_root/speech-NAME-HASH/``, resumably, and ``--shard i/n`` splits them.
"""

from __future__ import annotations

import hashlib
import zlib
from pathlib import Path

import numpy as np

from avatar3d.errors import BadInputError, UserError
from avatar3d.motion.basis import displacements
from avatar3d.motion.corpus import FPS, prepare_in_workers, rig_motion, speaker_rest, synthetic_spec, write_utterance
from avatar3d.motion.features import clip_features

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".mp3", ".ogg", ".m4a", ".opus"})
PREFIX = "speech:"


def find_recordings(folder: Path) -> dict[str, tuple[Path, str]]:
    """``stem -> (audio file, transcript)`` for every recording under ``folder`` with a
    transcript, in any of the module doc's layouts; stems are the paths inside ``folder``."""
    folder = Path(folder)
    found: dict[Path, str] = {}
    for listing in folder.rglob("*.trans.txt"):  # LibriSpeech
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            name, _, text = line.strip().partition(" ")
            audio = next((listing.with_name(name + s) for s in (".flac", ".wav") if listing.with_name(name + s).exists()), None)
            if audio is not None and text.strip():
                found[audio] = text
    for listing in folder.rglob("metadata.csv"):  # LJSpeech
        for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            fields = line.split("|")
            audio = listing.parent / "wavs" / f"{fields[0]}.wav"
            if len(fields) >= 2 and audio.exists():
                found[audio] = fields[-1] if fields[-1].strip() else fields[1]
    for audio in folder.rglob("*"):  # plain
        transcript = audio.with_suffix(".txt")
        if audio.suffix.lower() in AUDIO_SUFFIXES and audio not in found and transcript.exists():
            found[audio] = transcript.read_text(encoding="utf-8", errors="replace")
    return {"__".join(audio.relative_to(folder).with_suffix("").parts): (audio, text)
            for audio, text in sorted(found.items())}


def corpus_folder(source: Path, corpus_root: Path) -> Path:
    """Where the utterances of the recordings in ``source`` go."""
    source = Path(source).resolve()
    return Path(corpus_root) / f"speech-{source.name}-{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"


def prepare_recording(audio: Path, text: str, copy: int, target: Path) -> str | None:
    """Aligns one recording and writes its utterance (``copy`` > 0: augmented); returns why
    it cannot be used, or None."""
    from avatar3d.motion.generate import load_speech
    from avatar3d.motion.transcript import aligned_phonemes
    from avatar3d.rig.speech import Phoneme

    try:
        samples, rate = load_speech(audio)
        phonemes = aligned_phonemes(samples, rate, text, str(audio))
    except UserError as error:
        return str(error)
    # The speaker's face and articulation, as a synthetic speaker's: drawn from the file's name.
    spec = synthetic_spec(zlib.crc32(target.stem.encode()), copy)
    if copy > 0:
        from avatar3d.audio.augment import RATE, augment

        augmented = augment(samples, rate, zlib.crc32(f"{target.stem}:{copy}".encode()))
        scale = augmented.time_scale * RATE / rate
        samples, rate = augmented.samples, RATE
        phonemes = [Phoneme(p.label, int(round(p.start * scale)), int(round(p.end * scale))) for p in phonemes]
    num_frames = int(len(samples) / rate * FPS)
    rest = speaker_rest(spec)
    landmarks, _, labels = rig_motion(phonemes, rate, num_frames, FPS, rest, spec.articulation)
    write_utterance(target, {"audio": clip_features(samples, rate, num_frames, FPS),
                             "displacement": displacements(landmarks, rest).astype(np.float16),
                             "neutral": rest.astype(np.float32), "phoneme": labels, "fps": np.float32(FPS)})
    return None


def prepare_speech_corpus(source: Path, corpus_root: Path, shard: tuple[int, int] = (0, 1),
                          workers: int | None = None, copies: int = 1) -> Path:
    """Prepares the recordings under ``source`` (this shard's) that have no utterance yet.

    Args:
        source: folder of recordings with transcripts (the module doc's layouts).
        corpus_root: the corpus folder goes under it (`corpus_folder`).
        shard: (i, n): only jobs i, i + n ... of the sorted list.
        workers: processes side by side (default: one per CPU).
        copies: utterances per recording: the clean one, then augmented ones.

    Returns:
        The corpus folder.

    Raises:
        BadInputError: no recording with a transcript under ``source``.
    """
    recordings = find_recordings(source)
    if not recordings:
        raise BadInputError(f"--corpus {PREFIX}{source}: no recordings with transcripts there (NAME.wav beside "
                            "NAME.txt, LibriSpeech's *.trans.txt or LJSpeech's metadata.csv)")
    jobs = {(stem if copy == 0 else f"{stem}~{copy}"): (audio, text, copy)
            for stem, (audio, text) in recordings.items() for copy in range(copies)}
    folder = corpus_folder(source, corpus_root)
    prepare_in_workers(folder, jobs, prepare_recording, shard, workers, "speech recordings")
    return folder
