"""A corpus of talking videos: prepared in worker processes, resumable, sharded, bad videos left out."""

import shutil

import numpy as np
import pytest

from avatar3d.cli import main
from avatar3d.errors import BadInputError
from avatar3d.motion.corpus import load_utterance
from data_prep.video_corpus import corpus_folder, prepare_video_corpus
from avatar3d.train.motion_eval import mouth_opening


@pytest.fixture(scope="module")
def videos(clip_dir, tmp_path_factory):
    """Two copies of the session clip (one a level down, as LRS3 nests them) and a broken file."""
    folder = tmp_path_factory.mktemp("videos")
    (folder / "speaker").mkdir()
    shutil.copy(clip_dir / "video.mp4", folder / "speaker" / "clip.mp4")
    shutil.copy(clip_dir / "video.mp4", folder / "second.MP4")
    (folder / "broken.mp4").write_bytes(b"not a video at all")
    (folder / "notes.txt").write_text("not a video either")
    return folder


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    return tmp_path_factory.mktemp("corpora")


def test_videos_become_utterances_that_track_the_lips(videos, truth, corpus_root):
    folder = prepare_video_corpus(videos, corpus_root, workers=2)
    assert folder == corpus_folder(videos, corpus_root)
    assert sorted(p.name for p in folder.glob("*.npz")) == ["second.npz", "speaker__clip.npz"]
    assert "broken.mp4" in (folder / "broken.failed").read_text()
    assert not any((folder / ".prep").iterdir())  # prep folders go once their utterance is written
    utterance = load_utterance(folder / "speaker__clip.npz")
    frames = len(truth["mouth_opening"])
    assert utterance["displacement"].shape == (frames, 478, 3) and utterance["audio"].shape[0] == 2 * frames
    opening = mouth_opening(utterance["displacement"].astype(np.float32), utterance["neutral"])
    assert np.corrcoef(opening, truth["mouth_opening"])[0, 1] > 0.8  # the tracked lips are the actor's

    written = {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    prepare_video_corpus(videos, corpus_root, workers=2)  # resumes: nothing is prepared or retried
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} == written


def test_train_motion_on_a_folder_of_videos(videos, corpus_root, tmp_path):
    prepare_video_corpus(videos, corpus_root, workers=2)
    args = ["train", "motion", "--corpus", str(videos), "--corpus-root", str(corpus_root), "--run", str(tmp_path / "run"),
            "--heldout", "1", "--sync-steps", "5", "--vae-steps", "5", "--crop-frames", "40", "--width", "16",
            "--batch", "2"]
    assert main(args) == 0
    assert (tmp_path / "run" / "motion.pt").exists()


def test_shards_split_the_videos(videos, tmp_path):
    folder = prepare_video_corpus(videos, tmp_path, shard=(1, 3), workers=1)  # sorted: broken, second, speaker/clip
    assert [p.name for p in folder.iterdir() if p.is_file()] == ["second.npz"]


def test_a_folder_without_videos_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(BadInputError, match="no videos"):
        prepare_video_corpus(tmp_path, tmp_path / "corpus")
    assert main(["train", "motion", "--corpus", str(tmp_path), "--corpus-root", str(tmp_path / "c")]) == 2
