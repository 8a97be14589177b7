"""A speech: corpus: real recordings with transcripts become rig-spoken utterances; bad ones are left out."""

import shutil

import numpy as np
import pytest

from avatar3d.cli import main
from avatar3d.errors import BadInputError
from avatar3d.motion.corpus import load_utterance
from avatar3d.motion.speech_corpus import corpus_folder, find_recordings, prepare_speech_corpus
from avatar3d.train.motion_eval import bilabial_segments, closed_threshold, mouth_opening


@pytest.fixture(scope="module")
def recordings(speech_dev, tmp_path_factory):
    """The two ARCTIC clips (one a level down) and a0009's audio under a0007's transcript."""
    folder = tmp_path_factory.mktemp("speech")
    (folder / "awb").mkdir()
    for name, where in (("arctic_a0007", "awb"), ("arctic_a0009", ".")):
        shutil.copy(speech_dev / f"{name}.wav", folder / where / f"{name}.wav")
        shutil.copy(speech_dev / f"{name}.txt", folder / where / f"{name}.txt")
    shutil.copy(speech_dev / "arctic_a0009.wav", folder / "mislabelled.wav")
    shutil.copy(speech_dev / "arctic_a0007.txt", folder / "mislabelled.txt")
    (folder / "untranscribed.wav").write_bytes((speech_dev / "arctic_a0009.wav").read_bytes())
    return folder


def test_recordings_become_utterances_that_close_at_the_aligned_bilabials(recordings, tmp_path):
    folder = prepare_speech_corpus(recordings, tmp_path, workers=2, copies=2)
    assert folder == corpus_folder(recordings, tmp_path)
    assert sorted(p.name for p in folder.glob("*.npz")) == [
        "arctic_a0009.npz", "arctic_a0009~1.npz", "awb__arctic_a0007.npz", "awb__arctic_a0007~1.npz"]
    assert "mislabelled.wav" in (folder / "mislabelled.failed").read_text()  # its reason names the file
    assert (folder / "mislabelled~1.failed").exists()  # its augmented copy too; the run went on
    for name, count in (("arctic_a0009", 2), ("arctic_a0009~1", 2), ("awb__arctic_a0007", 1)):
        utterance = load_utterance(folder / f"{name}.npz")
        opening = mouth_opening(utterance["displacement"].astype(np.float32), utterance["neutral"])
        segments = bilabial_segments(utterance["phoneme"])
        assert len(segments) == count  # sharPly, taBle / superlative
        assert all(opening[s].min() < closed_threshold(opening) for s in segments)
        assert opening.max() > 3 * closed_threshold(opening)
    clean, augmented = (load_utterance(folder / f"arctic_a0009{s}.npz") for s in ("", "~1"))
    assert not np.array_equal(clean["audio"][: len(augmented["audio"])], augmented["audio"][: len(clean["audio"])])

    written = {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()}
    prepare_speech_corpus(recordings, tmp_path, workers=2, copies=2)  # resumes: nothing redone or retried
    assert {p: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} == written


def test_librispeech_and_ljspeech_layouts_are_read(speech_dev, tmp_path):
    libri = tmp_path / "libri" / "103" / "1240"
    libri.mkdir(parents=True)
    shutil.copy(speech_dev / "arctic_a0009.wav", libri / "103-1240-0000.wav")
    (libri / "103-1240.trans.txt").write_text("103-1240-0000 HE TURNED SHARPLY AND FACED GREGSON ACROSS THE TABLE\n"
                                              "103-1240-0001 A LINE WITHOUT ITS AUDIO\n")
    lj = tmp_path / "lj"
    (lj / "wavs").mkdir(parents=True)
    shutil.copy(speech_dev / "arctic_a0007.wav", lj / "wavs" / "LJ001-0001.wav")
    (lj / "metadata.csv").write_text("LJ001-0001|And you always want to see it in the superlative degree.|"
                                     "And you always want to see it in the superlative degree.\n")
    found = find_recordings(tmp_path)
    assert sorted(found) == ["libri__103__1240__103-1240-0000", "lj__wavs__LJ001-0001"]
    assert found["libri__103__1240__103-1240-0000"][1].startswith("HE TURNED")


def test_train_motion_on_speech_and_synthetic_corpora_together(recordings, tmp_path):
    args = ["train", "motion", "--corpus", f"synthetic,speech:{recordings}", "--utterances", "2", "--voices", "espeak",
            "--corpus-root", str(tmp_path / "corpora"), "--run", str(tmp_path / "run"), "--heldout", "1",
            "--sync-steps", "3", "--vae-steps", "3", "--crop-frames", "40", "--width", "16", "--batch", "2",
            "--features", "phones,energy", "--feature-dropout", "phones:0.3"]
    assert main(args) == 0
    assert (tmp_path / "run" / "motion.pt").exists()
    assert len(list((tmp_path / "corpora").glob("speech-*/*.npz"))) == 2


def test_a_folder_without_transcribed_recordings_is_refused(tmp_path, capsys):
    (tmp_path / "lonely.wav").write_bytes(b"RIFF")
    with pytest.raises(BadInputError, match="no recordings with transcripts"):
        prepare_speech_corpus(tmp_path, tmp_path / "corpus")
    assert main(["train", "motion", "--corpus", f"speech:{tmp_path}", "--corpus-root", str(tmp_path / "c")]) == 2
    assert "Traceback" not in capsys.readouterr().err
