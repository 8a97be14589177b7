"""``avatar3d synth`` end to end: files, A/V lengths, ground truth against MediaPipe, bad input."""

import numpy as np
import pytest
from PIL import Image

from avatar3d.audio.io import read_audio
from avatar3d.cli import main
from avatar3d.face.landmarks import FaceMeshTracker
from avatar3d.face.signals import face_width, mouth_opening
from avatar3d.synth import clip as clip_module
from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig
from avatar3d.rig.speech import phoneme_class
from avatar3d.video import read_frames


def test_video_audio_and_truth_have_the_same_length(clip_dir, truth):
    frames = list(read_frames(clip_dir / "video.mp4"))
    assert len(frames) == len(truth["blink"]) == 4 * 25
    assert frames[0].shape == (256, 256, 3)
    samples, rate = read_audio(clip_dir / "audio.wav")
    assert abs(len(samples) / rate - len(frames) / 25) < 1 / 25
    muxed, muxed_rate = read_audio(clip_dir / "video.mp4")
    assert abs(len(muxed) / muxed_rate - len(frames) / 25) < 1 / 25
    # The muxed track is the wav's sound, in sync: their envelopes line up at lag 0.
    n = min(len(muxed), len(samples))
    envelope = lambda x: np.abs(x[: n - n % 441]).reshape(-1, 441).mean(1)
    a, b = envelope(samples), envelope(muxed)
    lags = range(-5, 6)
    scores = [np.corrcoef(a[max(0, k):len(a) + min(0, k)], b[max(0, -k):len(b) - max(0, k)])[0, 1] for k in lags]
    assert lags[int(np.argmax(scores))] == 0 and max(scores) > 0.9


def test_mediapipe_finds_the_truth_landmarks_in_the_video(clip_dir, truth):
    errors, found = [], 0
    with FaceMeshTracker() as tracker:
        for index, frame in enumerate(read_frames(clip_dir / "video.mp4")):
            detected = tracker(frame)
            if detected is None:
                continue
            found += 1
            expected = truth["landmarks_2d"][index]
            errors.append(np.linalg.norm(detected[:, :2] - expected, axis=1) / face_width(expected))
    assert found >= 0.98 * len(truth["blink"])
    assert np.median(np.concatenate(errors)) < 0.03


def test_truth_mouth_follows_phonemes(truth):
    classes = np.array([phoneme_class(label) for label in truth["phoneme"]])
    opening = truth["mouth_opening"]
    assert opening[classes == "bilabial"].max() < 0.02
    vowels = np.isin(classes, ["open_vowel", "mid_vowel"])
    assert opening[vowels].mean() > 0.08
    np.testing.assert_allclose(truth["mouth_opening"], mouth_opening(truth["landmarks_3d"]), rtol=1e-5)


def test_truth_is_complete_and_consistent(truth):
    T = len(truth["blink"])
    assert truth["landmarks_2d"].shape == (T, 478, 2) and truth["landmarks_3d"].shape == (T, 478, 3)
    assert truth["rotation"].shape == (T, 3, 3) and truth["translation"].shape == (T, 3)
    assert truth["visemes"].shape == (T, 5) and truth["sh"].shape == (9, 3)
    np.testing.assert_allclose(truth["rotation"] @ truth["rotation"].transpose(0, 2, 1),
                               np.broadcast_to(np.eye(3), (T, 3, 3)), atol=1e-5)
    assert np.all(np.diff(truth["phoneme_start"]) >= 0)
    assert set(truth["phoneme"]) <= set(truth["phoneme_labels"]) | {"_"}


def test_passes_are_written_per_frame(clip_dir, truth):
    T = len(truth["blink"])
    for name in ("albedo", "normal", "label"):
        assert len(list((clip_dir / "passes" / name).glob("*.png"))) == T
    normal = np.asarray(Image.open(clip_dir / "passes/normal/000010.png"), dtype=np.float32) / 255
    inside = normal[..., 3] > 0.99
    lengths = np.linalg.norm(normal[inside][:, :3] * 2 - 1, axis=1)
    assert inside.mean() > 0.3 and np.abs(lengths - 1).max() < 0.05
    label = np.asarray(Image.open(clip_dir / "passes/label/000010.png"))
    assert set(np.unique(label)) == {0, 1, 2}


def test_same_seed_same_clip_other_seed_other_clip(tmp_path):
    def render(name, seed):
        make_clip(SynthConfig(out=tmp_path / name, seconds=1.2, resolution=96, seed=seed, supersample=1))
        with np.load(tmp_path / name / "truth.npz") as data:
            return dict(data), np.stack(list(read_frames(tmp_path / name / "video.mp4")))

    (truth_a, frames_a), (truth_b, frames_b) = render("a", 7), render("b", 7)
    for key in truth_a:
        np.testing.assert_array_equal(truth_a[key], truth_b[key], err_msg=key)
    np.testing.assert_array_equal(frames_a, frames_b)
    truth_c, _ = render("c", 8)
    assert not np.array_equal(truth_a["head_angles"], truth_c["head_angles"])


@pytest.mark.parametrize("args, message", [
    (["--voice", "klingon"], "voice"),
    (["--text", "   "], "text is empty"),
    (["--seconds", "0"], "--seconds"),
    (["--seconds", "-3"], "--seconds"),
    (["--resolution", "0"], "--resolution"),
    (["--resolution", "101"], "--resolution"),
    (["--passes", "albedo,depth"], "depth"),
    (["--light", "sunset"], "sunset"),
    (["--background", "#12"], "#RRGGBB"),
    (["--text", "A very long sentence that cannot fit in half a second at all.", "--seconds", "0.5"], "--seconds"),
    (["bogus=1"], "bogus"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, args, message):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["synth", "--out", str(out), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert message in error and "Traceback" not in error and len(error.splitlines()) == 1
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_unwritable_output_folder_is_a_user_error(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["synth", "--out", str(blocker / "clip"), "--seconds", "1"]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_failure_mid_render_keeps_earlier_outputs(tmp_path, monkeypatch):
    out = tmp_path / "out"
    make_clip(SynthConfig(out=out, seconds=0.4, resolution=64, supersample=1))
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    calls = []

    def failing_render(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise KeyboardInterrupt
        return real_render(*args, **kwargs)

    real_render = clip_module.render_frame
    monkeypatch.setattr(clip_module, "render_frame", failing_render)
    with pytest.raises(KeyboardInterrupt):
        make_clip(SynthConfig(out=out, seconds=2, resolution=64, supersample=1, seed=5))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
