"""The synthetic motion corpus: deterministic recipes, utterances whose lips follow the speech."""

import numpy as np
import pytest

from avatar3d.errors import BadInputError
from avatar3d.motion import corpus
from avatar3d.motion.features import AUDIO_DIMS
from avatar3d.train.motion_eval import bilabial_segments, closed_threshold, mouth_opening


def test_recipes_depend_only_on_seed_and_index():
    assert corpus.synthetic_spec(0, 5) == corpus.synthetic_spec(0, 5)
    assert corpus.synthetic_spec(0, 5) != corpus.synthetic_spec(0, 6)
    assert corpus.synthetic_spec(1, 5).text != corpus.synthetic_spec(0, 5).text
    assert corpus.synthetic_spec(0, 5, "Hello there.").text == "Hello there."
    sentence = corpus.random_sentence(np.random.default_rng(3))
    assert "{" not in sentence and sentence[0].isupper() and sentence[-1] in ".?"


@pytest.fixture(scope="module")
def utterance(tmp_path_factory):
    spec = corpus.synthetic_spec(0, 0, "Bob maps a pebble by the open window.")
    path = corpus.utterance_path(tmp_path_factory.mktemp("corpus"), 0)
    corpus.write_utterance(path, corpus.synthesize_utterance(spec))
    return corpus.load_utterance(path)


def test_utterance_arrays_line_up(utterance):
    frames = len(utterance["displacement"])
    assert utterance["audio"].shape == (2 * frames, AUDIO_DIMS)
    assert utterance["phoneme"].shape == (frames,) and utterance["neutral"].shape == (478, 3)
    assert np.isfinite(utterance["audio"]).all()
    assert float(utterance["fps"]) == corpus.FPS


def test_lips_close_on_bilabials_and_open_in_speech(utterance):
    opening = mouth_opening(utterance["displacement"].astype(np.float32), utterance["neutral"])
    segments = bilabial_segments(utterance["phoneme"])
    assert len(segments) >= 4  # b, m, p, b, p in the sentence
    closed = closed_threshold(opening)
    assert 0 < closed < 0.03  # lips meet within a few millimetres
    assert all(opening[segment].min() < closed for segment in segments)
    assert opening.max() > 3 * closed


def test_damaged_utterance_is_named(tmp_path):
    broken = tmp_path / "000001.npz"
    broken.write_bytes(b"not an npz")
    with pytest.raises(BadInputError, match="000001.npz"):
        corpus.load_utterance(broken)
