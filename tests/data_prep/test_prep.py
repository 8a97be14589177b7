"""``avatar3d prep`` on virtual-actor footage: accuracy against the truth, resume, bad input."""

import json
from fractions import Fraction

import av
import numpy as np
import pytest

from avatar3d.audio.io import read_audio
from avatar3d.cli import main
from avatar3d.face.signals import face_width, mouth_opening
from avatar3d.subject import Subject
from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig
from data_prep import pipeline
from data_prep.config import PrepConfig
from data_prep.decode import resample_frames
from data_prep.pipeline import run_prep


@pytest.fixture(scope="module")
def actor(tmp_path_factory):
    out = tmp_path_factory.mktemp("actor")
    make_clip(SynthConfig(out=out, seconds=6, resolution=256, seed=11, supersample=1))
    with np.load(out / "truth.npz") as truth:
        return out / "video.mp4", dict(truth)


@pytest.fixture(scope="module")
def subject(actor, tmp_path_factory):
    out = tmp_path_factory.mktemp("subject")
    run_prep(PrepConfig(video=actor[0], out=out, resolution=256))
    return Subject.load(out)


def _in_subject_pixels(points, subject):
    crop = subject.manifest["crop"]
    return (points - [crop["x0"], crop["y0"]]) * crop["scale"]


def test_landmarks_match_the_truth(actor, subject):
    truth = actor[1]
    stats = subject.stats
    assert stats["num_frames"] == len(truth["blink"]) == 150
    assert stats["landmarks.detected_fraction"] >= 0.99
    expected = _in_subject_pixels(truth["landmarks_2d"], subject)
    found = subject.arrays("landmarks")["landmarks"]
    error = np.linalg.norm(found - expected, axis=-1) / face_width(expected)[:, None]
    assert np.median(error) < 0.02
    assert np.corrcoef(mouth_opening(found), truth["mouth_opening"])[0, 1] >= 0.9


def test_masks_background_split_and_audio(subject):
    assert subject.stats["background.coverage"] >= 0.9
    labels = subject.labels(75)
    rows = np.arange(labels.shape[0])[:, None].repeat(labels.shape[1], 1)
    assert rows[labels == 2].mean() < rows[labels == 1].mean()  # head above torso
    assert (labels == 0).mean() > 0.2
    assert subject.manifest["split"] == {"train": [0, 135], "val": [135, 150]}
    samples, rate = read_audio(subject.root / "audio.wav")
    assert rate == 16000 and len(samples) == 6 * 16000 and subject.stats["audio.present"]
    assert subject.frame(0).shape == (256, 256, 3)
    from avatar3d.video import read_frames

    preview = list(read_frames(subject.root / "preview.mp4"))
    assert len(preview) == 150 and preview[0].shape == (256, 256, 3)
    assert abs(len(read_audio(subject.root / "preview.mp4")[0]) / 16000 - 6.0) < 0.04


def test_rerun_keeps_every_step(actor, subject, capsys):
    before = (subject.root / "landmarks.npz").stat().st_mtime_ns
    run_prep(PrepConfig(video=actor[0], out=subject.root, resolution=256))
    assert capsys.readouterr().err.count("done earlier, kept") == len(pipeline.STEPS)
    assert (subject.root / "landmarks.npz").stat().st_mtime_ns == before


def test_killed_run_resumes_to_the_same_result(actor, subject, tmp_path, monkeypatch):
    out = tmp_path / "subject"
    real_segment = pipeline.mask_step.segment

    def killed(frames, *args):
        def interrupted():
            for index, image in frames:
                if index == 40:
                    raise KeyboardInterrupt
                yield index, image
        return real_segment(interrupted(), *args)

    monkeypatch.setattr(pipeline.mask_step, "segment", killed)
    with pytest.raises(KeyboardInterrupt):
        run_prep(PrepConfig(video=actor[0], out=out, resolution=256))
    assert "masks" not in json.loads((out / "subject.json").read_text())["steps"]
    monkeypatch.undo()
    run_prep(PrepConfig(video=actor[0], out=out, resolution=256))
    resumed = Subject.load(out)
    np.testing.assert_array_equal(resumed.arrays("landmarks")["landmarks"], subject.arrays("landmarks")["landmarks"])
    for index in (0, 40, 149):
        np.testing.assert_array_equal(resumed.labels(index), subject.labels(index))
    assert resumed.stats == subject.stats


def _write_video(path, frames, rate, audio=None):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))


def test_resample_picks_the_frame_on_screen():
    source = [(i * 1001 / 30000, i) for i in range(300)]  # 29.97 fps for ~10 s
    picked = list(resample_frames(iter(source), 25))
    assert len(picked) == int(300 * 1001 / 30000 * 25)
    for index, frame in picked:
        assert source[frame][0] <= index / 25 + 1e-6 < source[frame][0] + 1001 / 30000


def test_29_97_fps_video_without_audio(actor, tmp_path, capsys):
    from avatar3d.video import read_frames

    frames = list(read_frames(actor[0]))[:150]
    video = tmp_path / "ntsc.mp4"
    _write_video(video, frames, Fraction(30000, 1001))
    out = tmp_path / "subject"
    assert main(["prep", str(video), "--out", str(out), "--resolution", "128"]) == 0
    assert "no audio track" in capsys.readouterr().err
    prepared = Subject.load(out)
    assert prepared.num_frames == int(150 * 1001 / 30000 * 25)
    assert prepared.stats["audio.present"] is False and not (out / "audio.wav").exists()


@pytest.mark.parametrize("case", ["not_video", "too_short", "no_face", "other_video"])
def test_bad_input_is_one_line_exit_2(case, actor, subject, tmp_path, capsys):
    out = tmp_path / "out"
    if case == "not_video":
        video = tmp_path / "notes.mp4"
        video.write_text("not a video")
        expected = "not a readable video"
    elif case == "too_short":
        video = tmp_path / "short.mp4"
        _write_video(video, list(__import__("avatar3d.video").video.read_frames(actor[0]))[:50], 25)
        expected = "--allow-short"
    elif case == "no_face":
        video = tmp_path / "wall.mp4"
        _write_video(video, [np.full((128, 128, 3), 90, np.uint8)] * 150, 25)
        expected = "no face found"
    else:
        video, out = tmp_path / "other.mp4", subject.root
        _write_video(video, [np.full((128, 128, 3), 90, np.uint8)] * 150, 25)
        expected = "another video"
    before = sorted(p.name for p in subject.root.iterdir())
    assert main(["prep", str(video), "--out", str(out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and expected in error[0] and "Traceback" not in error[0]
    assert sorted(p.name for p in subject.root.iterdir()) == before


def test_face_fit_recovers_head_rotation_and_reprojects_tightly(actor, subject):
    truth, fit = actor[1], subject.arrays("face_fit")
    assert subject.stats["face_fit.reprojection_px_median"] * 512 / 256 <= 1.5
    # Head spaces differ by a fixed rotation (the fit frontalises by symmetry): remove the
    # best one (orthogonal Procrustes), then compare frame by frame.
    U, _, Vt = np.linalg.svd(np.einsum("tji,tjk->ik", truth["rotation"], fit["rotation"]))
    fixed = U @ np.diag([1, 1, np.linalg.det(U @ Vt)]) @ Vt
    difference = fit["rotation"].transpose(0, 2, 1) @ truth["rotation"] @ fixed
    angle = np.degrees(np.arccos(np.clip((np.trace(difference, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert np.median(angle) < 2.0
    assert fit["basis"].shape[1:] == (478, 3) and fit["expression"].shape == (150, fit["basis"].shape[0])


def test_small_face_in_a_wide_frame_with_a_moving_background(actor, tmp_path):
    """A ~55 px face in 1280x720 at 30 fps over a sliding texture, no audio: real-footage shape."""
    import cv2

    from avatar3d.video import read_frames

    frames = list(read_frames(actor[0]))
    texture = cv2.resize(np.random.default_rng(0).integers(0, 255, (40, 120, 3), np.uint8), (2000, 720),
                         interpolation=cv2.INTER_CUBIC)
    wide = []
    for i in range(180):
        canvas = np.ascontiguousarray(texture[:, 4 * i: 4 * i + 1280])
        x = 700 + int(30 * np.sin(i / 15))
        canvas[400:560, x: x + 160] = cv2.resize(frames[int(i * 25 / 30)], (160, 160), interpolation=cv2.INTER_AREA)
        wide.append(canvas)
    video = tmp_path / "wide.mp4"
    _write_video(video, wide, 30)
    prepared = Subject.load(run_prep(PrepConfig(video=video, out=tmp_path / "subject", resolution=128)))
    crop = prepared.manifest["crop"]
    assert crop["x0"] <= 670 and crop["x0"] + crop["size"] >= 890 and crop["y0"] <= 400
    assert crop["size"] < 400  # framed on the actor, not the whole frame
    assert prepared.stats["landmarks.detected_fraction"] >= 0.99
    assert prepared.stats["face_fit.reprojection_px_median"] < 1.5


def _actor_frames(actor, count=150):
    from avatar3d.video import read_frames

    return list(read_frames(actor[0]))[:count]


def test_face_lost_for_a_stretch_is_reported_by_frame_range(actor, tmp_path, capsys):
    frames = _actor_frames(actor)
    blank = np.full_like(frames[0], 90)
    video = tmp_path / "lost.mp4"
    _write_video(video, frames[:60] + [blank] * 30 + frames[90:], 25)
    prepared = Subject.load(run_prep(PrepConfig(video=video, out=tmp_path / "subject", resolution=128)))
    assert "face lost" in capsys.readouterr().err
    assert prepared.manifest["steps"]["landmarks"]["untracked_ranges"] == [[60, 89]]
    assert not prepared.arrays("landmarks")["detected"][60:90].any()


def test_face_missing_most_of_the_time_is_refused_naming_frames(actor, tmp_path, capsys):
    frames = _actor_frames(actor)
    video = tmp_path / "mostly_empty.mp4"
    _write_video(video, frames[:40] + [np.full_like(frames[0], 90)] * 110, 25)
    assert main(["prep", str(video), "--out", str(tmp_path / "subject"), "--resolution", "128"]) == 2
    assert "frames 40-149" in capsys.readouterr().err


def test_several_faces_keep_the_largest_with_a_warning(actor, tmp_path, capsys):
    import cv2

    frames = _actor_frames(actor)
    pairs = [np.concatenate([f, np.pad(cv2.resize(f, (192, 192)), ((32, 32), (32, 32), (0, 0)))], 1)
             for f in frames]  # the same actor again, smaller, to the right
    video = tmp_path / "two.mp4"
    _write_video(video, pairs, 25)
    prepared = Subject.load(run_prep(PrepConfig(video=video, out=tmp_path / "subject", resolution=128)))
    assert "several faces" in capsys.readouterr().err
    assert prepared.manifest["crop"]["x0"] < 128  # framed on the larger, left actor


def test_truncated_file_is_a_user_error(actor, tmp_path, capsys):
    data = actor[0].read_bytes()
    video = tmp_path / "truncated.mp4"
    video.write_bytes(data[: len(data) // 3])
    assert main(["prep", str(video), "--out", str(tmp_path / "subject")]) == 2
    error = capsys.readouterr().err
    assert str(video) in error and "Traceback" not in error
