"""Talking corpora for the motion models: utterances of audio features and expressions.

A corpus is a folder of ``NNNNNN.npz`` files, one per utterance, each holding

- ``audio`` (2T, AUDIO_DIMS) float32: `avatar3d.motion.features.feature_matrix`;
- ``displacement`` (T, 478, 3) float16: head-frame landmark displacements from the
  speaker's neutral face, in face widths (`avatar3d.motion.basis.displacements`);
- ``neutral`` (478, 3) float32: the speaker's neutral landmarks, head frame;
- ``phoneme`` (T,) str: the phoneme at each frame's centre where it is known ("" if not);
- ``fps`` float.

`make_synthetic_corpus` fills one with the virtual actor: generated sentences spoken by
espeak-ng's voices at random rates and pitches, mouths moved by the actor's viseme rig on
faces of random proportions. No frame is rendered or tracked, so the landmarks are exact
and an utterance costs a fraction of a second. Each utterance depends only on (seed,
index), so a run can be interrupted and resumed, or split into shards across machines.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from avatar3d.errors import BadInputError
from avatar3d.face.model import fitted_landmarks
from avatar3d.files import atomic_path
from avatar3d.motion.basis import displacements
from avatar3d.motion.features import clip_features, feature_matrix
from avatar3d.runtime import console, progress, worker_count, worker_pool

FPS = 25.0
PAUSE_SECONDS = (0.2, 0.6)  # silence before and after each sentence

# Templated sentences over a broad vocabulary: every English viseme class, bilabials and
# labiodentals in all positions. Held-out evaluation uses the Harvard sentences instead.
_WORDS = {
    "adj": "big small bright pale brown warm cold quiet busy famous simple broken modern empty "
           "heavy open proper public silver purple perfect humble gentle rapid vivid foreign "
           "yellow orange smooth rough thick thin cheap dusty muddy shiny",
    "noun": "boat map pebble window mother father baby puppy bottle table bridge valley forest "
            "river mountain market museum member number problem vehicle engine picture banana "
            "pocket summer winter morning evening garden office hotel moon beach butter pepper "
            "fish voice phone wave movie coffee office view river job watch shoe zoo",
    "verb": "moved bought found pushed pulled opened followed painted measured washed carried "
            "jumped played visited watched admired improved removed offered bumped fixed saved "
            "chose threw built grabbed wrapped dropped shaped loved",
    "adverb": "quickly slowly happily quietly boldly vividly fairly promptly smoothly gravely",
    "place": "by the harbour|beyond the village|in the museum|under the bridge|at the market|"
             "near the old mill|behind the barn|over the fence|up the path|from the window",
}
_TEMPLATES = (
    "The {adj} {noun} {verb} the {adj} {noun} {place}.",
    "My {noun} {verb} a {adj} {noun} {adverb}.",
    "{Adj} {noun}s {verb} {adverb} {place}.",
    "Before the {noun} {verb} the {noun}, we {verb} it {adverb}.",
    "Why was the {adj} {noun} {verb} {place}?",
    "Please bring the {noun} and the {adj} {noun} {place}.",
    "Maybe the {noun} {verb} five {adj} {noun}s, but the {noun} moved.",
    "Every {adj} {noun} {verb} the {noun} of a {adj} {noun}.",
)
VOICE_GROUPS = {
    "espeak": ("en-us", "en-us-f", "en-us-f2", "en-us-m2", "en-gb", "en-gb-f", "en-rp", "en-sc", "en-sc-f",
               "en-us-m7", "en-us-f4", "en-us-klatt", "en-gb-m3"),
    "festival": ("festival-kal", "festival-ked", "festival-slt"),  # cut from / trained on real speakers
    "flite": ("flite-rms", "flite-awb", "flite-slt", "flite-kal"),  # trained on / cut from real speakers
}
"""Voices of the synthetic corpus by synthesiser; each utterance draws a group, then a voice."""
AUGMENTED_SHARE = 0.7
"""Share of synthetic utterances sent through `avatar3d.audio.augment` (the rest stay clean)."""
CORPUS_VERSION = 2
"""Bumped whenever an utterance's recipe changes, so an older corpus on disk is not mixed in."""


@dataclass(frozen=True)
class SyntheticSpec:
    """How utterance ``index`` of a synthetic corpus is made (drawn from (seed, index))."""

    text: str
    voice: str
    words_per_minute: int
    pitch: int
    face_scale: tuple[float, float, float]  # x, y, z stretch of the neutral face
    articulation: float  # scales the viseme controls: how wide this speaker opens
    pauses: tuple[float, float]
    augment_seed: int | None = None  # seed of the audio augmentation; None: clean audio


def random_sentence(rng: np.random.Generator) -> str:
    """A grammatical, meaningless English sentence from the templates."""
    words = {key: value.split("|" if key == "place" else None) for key, value in _WORDS.items()}
    text = _TEMPLATES[rng.integers(len(_TEMPLATES))]
    text = text.replace("{Adj}", str(rng.choice(words["adj"])).capitalize())
    for key, options in words.items():  # each slot gets its own draw
        while "{" + key + "}" in text:
            text = text.replace("{" + key + "}", str(rng.choice(options)), 1)
    return text


def synthetic_spec(seed: int, index: int, text: str | None = None,
                   voices: tuple[str, ...] = tuple(VOICE_GROUPS), augmented: bool = True) -> SyntheticSpec:
    """The recipe of utterance ``index`` (``text`` overrides the generated sentence; ``voices``
    names the `VOICE_GROUPS` to draw from; ``augmented`` False keeps every utterance clean)."""
    rng = np.random.default_rng([seed, index])
    sentence = random_sentence(rng)
    group = VOICE_GROUPS[voices[rng.integers(len(voices))]]
    return SyntheticSpec(
        text=text or sentence,
        voice=str(rng.choice(group)),
        words_per_minute=int(rng.integers(120, 231)),
        pitch=int(rng.integers(25, 76)),
        face_scale=tuple(float(s) for s in rng.uniform([0.9, 0.88, 0.85], [1.1, 1.12, 1.15])),
        articulation=float(rng.uniform(0.75, 1.2)),
        pauses=tuple(float(p) for p in rng.uniform(*PAUSE_SECONDS, size=2)),
        augment_seed=int(rng.integers(2**31)) if rng.random() < AUGMENTED_SHARE and augmented else None,
    )


@functools.cache
def _actor_rest() -> np.ndarray:
    """(478, 3) the virtual actor's neutral landmarks (MediaPipe on its photo: built once)."""
    from avatar3d.rig.actor import build_actor

    return build_actor().rig.rest.astype(np.float64)


def speak(spec: SyntheticSpec) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Speaks ``spec`` and moves the rig.

    Returns:
        ``(samples, rate, landmarks, phonemes)``: (N,) float32 speech with the pauses, its
        rate in Hz, (T, 478, 3) the speaker's head-frame landmarks per frame at ``FPS`` and
        (T,) the phoneme label at each frame's centre.
    """
    from avatar3d.rig.speech import Phoneme, synthesize

    speech = synthesize(spec.text, spec.voice, spec.words_per_minute, spec.pitch)
    rate = speech.sample_rate
    before, after = (int(round(p * rate)) for p in spec.pauses)
    samples = np.concatenate([np.zeros(before, np.float32), speech.samples, np.zeros(after, np.float32)])
    phonemes = ([Phoneme("_", 0, before)] + [Phoneme(p.label, p.start + before, p.end + before) for p in speech.phonemes]
                + [Phoneme("_", before + len(speech.samples), len(samples))])
    if spec.augment_seed is not None:  # after the pauses: room and noise fill them as they would
        from avatar3d.audio.augment import RATE, augment

        augmented = augment(samples, rate, spec.augment_seed)
        scale = augmented.time_scale * RATE / rate
        samples, rate = augmented.samples, RATE
        phonemes = [Phoneme(p.label, int(round(p.start * scale)), int(round(p.end * scale))) for p in phonemes]
    num_frames = int(len(samples) / rate * FPS)
    landmarks, _, labels = rig_motion(phonemes, rate, num_frames, FPS, speaker_rest(spec), spec.articulation)
    return samples, rate, landmarks, labels


def rig_motion(phonemes: list, sample_rate: int, num_frames: int, fps: float, rest: np.ndarray,
               articulation: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The virtual actor's mouth rig speaking timed phonemes, on a face with neutral ``rest``.

    Args:
        phonemes: `avatar3d.rig.speech.Phoneme` s (espeak-ng mnemonics), sample positions
            at ``sample_rate``.
        num_frames, fps: the frames to make (frame i at its centre, (i + 0.5) / fps seconds).
        rest: (478, 3) neutral landmarks, head frame.
        articulation: scales the viseme controls (how wide this speaker opens).

    Returns:
        (T, 478, 3) head-frame landmarks (no blinks), (T, 5) the viseme controls that moved
        them (`avatar3d.rig.visemes.VISEME_NAMES`) and (T,) the phoneme at each frame's centre.
    """
    from avatar3d.rig import expression
    from avatar3d.rig.visemes import phoneme_at, viseme_track

    times = (np.arange(num_frames) + 0.5) / fps
    visemes = viseme_track(phonemes, sample_rate, times) * articulation
    visemes[:, 3:] = np.minimum(visemes[:, 3:], 1.0)  # press and tuck are closures: never beyond shut
    rig = expression.build_rig(rest)
    landmarks = np.stack([expression.apply(rig, v, 0.0) for v in visemes]).reshape(num_frames, len(rest), 3)
    return landmarks, visemes, np.array(phoneme_at(phonemes, sample_rate, times))


def speaker_rest(spec: SyntheticSpec) -> np.ndarray:
    """(478, 3) the neutral face of the utterance's speaker (the actor's, stretched)."""
    return _actor_rest() * np.asarray(spec.face_scale)


def synthesize_utterance(spec: SyntheticSpec) -> dict[str, np.ndarray]:
    """The arrays of one corpus file (see the module doc)."""
    samples, rate, landmarks, phonemes = speak(spec)
    rest = speaker_rest(spec)
    return {
        "audio": clip_features(samples, rate, len(landmarks), FPS),
        "displacement": displacements(landmarks, rest).astype(np.float16),
        "neutral": rest.astype(np.float32),
        "phoneme": phonemes,
        "fps": np.float32(FPS),
    }


def make_utterance(spec: SyntheticSpec, target: Path) -> None:
    """Synthesises ``spec`` into the corpus file ``target`` (a `prepare_in_workers` job)."""
    write_utterance(target, synthesize_utterance(spec))


def utterance_path(corpus: Path, index: int) -> Path:
    """File of utterance ``index``."""
    return Path(corpus) / f"{index:06d}.npz"


def write_utterance(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes one corpus file atomically (an interrupted write leaves no file)."""
    with atomic_path(path) as partial:
        np.savez(partial, **arrays)


def load_utterance(path: Path) -> dict[str, np.ndarray]:
    """Reads one corpus file; a damaged one is named in the error."""
    try:
        with np.load(path) as data:
            arrays = {key: data[key] for key in ("audio", "displacement", "neutral", "phoneme", "fps")}
    except (OSError, KeyError, ValueError) as error:
        raise BadInputError(f"{path}: not a readable corpus utterance ({error}); delete it and run again") from None
    if len(arrays["audio"]) != 2 * len(arrays["displacement"]):
        raise BadInputError(f"{path}: audio rows ({len(arrays['audio'])}) are not twice the frames "
                            f"({len(arrays['displacement'])}); delete it and run again")
    return arrays


def prepare_in_workers(folder: Path, jobs: dict[str, tuple], prepare: Callable[..., str | None],
                       shard: tuple[int, int] = (0, 1), workers: int | None = None,
                       description: str = "corpus") -> None:
    """Makes the utterance files of a corpus of outside sources in worker processes, resumably.

    Args:
        folder: the corpus folder; utterance ``STEM`` is ``folder/STEM.npz``.
        jobs: ``STEM -> arguments``, in a stable order; ``prepare(*arguments, target)`` writes
            ``target`` and returns None, or returns why the source cannot be used.
        shard: (i, n): only jobs i, i + n, i + 2n ... (to split the work across machines).
        workers: processes side by side (default: one per thread, `avatar3d.runtime.worker_count`).
        description: the progress bar's label.

    Done utterances are kept and a source that failed before (``STEM.failed``, holding the
    reason) is not tried again, so an interrupted run resumes where it stopped.
    """
    folder.mkdir(parents=True, exist_ok=True)
    index, count = shard
    pending = [(stem, arguments) for stem, arguments in list(jobs.items())[index::count]
               if not (folder / f"{stem}.npz").exists() and not (folder / f"{stem}.failed").exists()]
    if pending:
        # spawn, not fork: MediaPipe, torch and pocketsphinx keep threads that a fork would copy mid-work.
        with worker_pool(worker_count(len(pending), workers), "spawn") as pool:
            futures = [pool.submit(prepare, *arguments, folder / f"{stem}.npz") for stem, arguments in pending]
            for (stem, arguments), future in progress(zip(pending, futures), len(pending), description):
                reason = future.result()
                if reason is not None:
                    (folder / f"{stem}.failed").write_text(f"{arguments[0]}: {reason}\n")
    usable = len(list(folder.glob("*.npz")))
    refused = sorted(folder.glob("*.failed"))
    console.print(f"corpus {folder}: {usable} utterances" + (
        f", {len(refused)} sources left out (reasons in {folder}/*.failed)" if refused else ""))


def prepared_utterance(root: Path) -> dict[str, np.ndarray]:
    """A prepared clip (decode, landmarks, face_fit and audio_features done) as one utterance.

    Returns the corpus arrays of `avatar3d.motion.corpus`: ``audio`` (2T, A), ``displacement``
    (T, 478, 3) float32 face widths, ``neutral`` (478, 3), ``phoneme`` (T,) all "" (unknown),
    ``fps``.
    """
    from avatar3d.subject import Subject

    subject = Subject.load(root)
    if not (root / "audio_features.npz").exists():
        raise BadInputError(f"{root}: the video has no audio track")
    fit = subject.arrays("face_fit")
    landmarks = fitted_landmarks(fit)
    return {
        "audio": feature_matrix(subject.arrays("audio_features")),
        "displacement": displacements(landmarks, fit["canonical"]).astype(np.float32),
        "neutral": fit["canonical"].astype(np.float32),
        "phoneme": np.full(len(landmarks), ""),
        "fps": np.float32(subject.fps),
    }
