"""Corpora of real talking videos: each video prepared into one corpus utterance.

`avatar3d train motion --corpus DIR` on a folder of videos (at any depth, as LRS3's
``speaker/clip.mp4``) runs the landmark-and-audio part of `avatar3d prep` on every video
(decode at 256 pixels, landmarks, face fit, audio features; no masks, no preview). The
fitted landmarks become head-frame displacements from the speaker's fitted neutral face
(the clip's mean face, as for a subject), and each video one utterance file in
``corpus_root/videos-NAME-HASH/``, named after its path inside DIR.

Videos are prepared in parallel worker processes. The job resumes: finished utterances
are kept, and a video interrupted mid-prep resumes its prep. A video that cannot be used
(no audio, no face, unreadable, face tracked in too few frames) gets a ``.failed`` file
with the reason instead, and is not tried again. ``--shard i/n`` prepares videos i, i+n,
... only, to split the work across machines.
"""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np

from avatar3d.errors import BadInputError
from avatar3d.motion.corpus import prepare_in_workers, prepared_utterance, write_utterance
from avatar3d.train.config import MotionTrainConfig

VIDEO_SUFFIXES = frozenset({".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg"})
PREP_STEPS = ("decode", "landmarks", "face_fit", "audio_features")
PREP_RESOLUTION = 256  # the landmarks need the face, not the pixels
MIN_TRACKED = 0.9  # fewer frames with a detected face than this: the motion is mostly interpolation


def find_videos(folder: Path) -> list[Path]:
    """Video files under ``folder`` at any depth, sorted by path."""
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file())


def corpus_folder(videos: Path, corpus_root: Path) -> Path:
    """Where the utterances of the video folder ``videos`` go (one folder per source folder)."""
    source = Path(videos).resolve()
    digest = hashlib.sha256(str(source).encode()).hexdigest()[:8]
    return Path(corpus_root) / f"videos-{source.name}-{digest}"


def utterance_stem(video: Path, videos: Path) -> str:
    """``speaker/clip.mp4`` -> ``speaker__clip``: unique within the folder, flat."""
    return "__".join(Path(video).relative_to(videos).with_suffix("").parts)


def prepare_video(video: Path, target: Path, work: Path) -> str | None:
    """Prepares one video into the utterance file ``target``; returns why not, or None.

    The prep folder ``work`` is kept while the video is being prepared (an interrupted prep
    resumes) and removed once the video is done with, used or not.
    """
    from avatar3d.subject import Subject
    from data_prep.config import PrepConfig
    from data_prep.pipeline import run_prep

    reason = None
    try:
        run_prep(PrepConfig(video=video, out=work, resolution=PREP_RESOLUTION, allow_short=True), PREP_STEPS)
        tracked = Subject.load(work).stats.get("landmarks.detected_fraction") or 0.0
        if tracked < MIN_TRACKED:
            reason = f"a face is tracked in {tracked:.0%} of frames, under {MIN_TRACKED:.0%}"
        else:
            utterance = prepared_utterance(work)
            write_utterance(target, {**utterance, "displacement": utterance["displacement"].astype(np.float16)})
    except Exception as error:  # noqa: BLE001 - one bad video in thousands must not stop the corpus
        reason = f"{type(error).__name__}: {error}"
    shutil.rmtree(work, ignore_errors=True)
    return reason


def prepare_video_corpus(videos: Path, corpus_root: Path, shard: tuple[int, int] = (0, 1),
                         workers: int | None = None) -> Path:
    """Prepares the videos under ``videos`` (this shard's) that have no utterance yet.

    Args:
        videos: folder of talking videos, searched at any depth.
        corpus_root: the corpus folder goes under it (`corpus_folder`).
        shard: (i, n): only videos i, i + n, i + 2n ... of the sorted list.
        workers: processes preparing videos side by side (default: one per CPU).

    Returns:
        The corpus folder.

    Raises:
        BadInputError: no video under ``videos``.
    """
    videos = Path(videos)
    found = find_videos(videos)
    if not found:
        raise BadInputError(f"--corpus {videos}: no videos ({', '.join(sorted(VIDEO_SUFFIXES))}) found there")
    folder = corpus_folder(videos, corpus_root)
    jobs = {utterance_stem(video, videos): (video,) for video in found}
    prepare_in_workers(folder, jobs, _prepare_job, shard, workers, "corpus videos")
    return folder


def with_prepared_videos(cfg: MotionTrainConfig) -> MotionTrainConfig:
    """``cfg`` with each ``--corpus`` entry that is a folder of videos prepared (this
    ``--shard``'s videos) and replaced by the folder of its utterances."""
    corpora = [str(prepare_video_corpus(Path(spec), cfg.corpus_root, cfg.shard_range(), cfg.workers))
               if Path(spec).is_dir() and find_videos(Path(spec)) else spec for spec in cfg.corpora()]
    return dataclasses.replace(cfg, corpus=",".join(corpora))


def _prepare_job(video: Path, target: Path) -> str | None:
    return prepare_video(video, target, target.parent / ".prep" / target.stem)
