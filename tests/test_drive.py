"""`avatar3d drive` end to end on the session subject, with a tiny avatar and a tiny motion model."""

from fractions import Fraction

import av
import numpy as np
import pytest

from avatar3d.cli import main
from avatar3d.drive import Avatar
from avatar3d.subject import Subject
from avatar3d.audio.io import read_audio
from avatar3d.render.sh import load_light
from avatar3d.video import VideoWriter, read_frames
from conftest import write_stereo_speech  # tests/ is on sys.path (pytest rootdir conftest)


def _drive(subject_dir, trained_run, model_path, audio, out, *extra) -> int:
    return main(["drive", str(subject_dir), "--audio", str(audio), "--run", str(trained_run), "--motion",
                 str(model_path), "--out", str(out), *extra])


def _video_seconds(path) -> float:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.frames / float(stream.average_rate)


@pytest.mark.parametrize("fps", [25, 30000 / 1001])
def test_audio_and_video_stay_in_sync(tmp_path, fps):
    """A click in the audio and a white flash in the frames at the same moment come out together."""
    rate, size, flash = 48000, 64, 37
    seconds = 3.0
    audio = np.zeros(int(seconds * rate), np.float32)
    click = int(round(flash / fps * rate))
    audio[click: click + 240] = 0.9
    with VideoWriter(tmp_path / "sync.mp4", fps, size, audio, rate) as video:
        for index in range(int(round(seconds * fps))):
            video.write(np.full((size, size, 3), 255 if index == flash else 0, np.uint8))
    brightness = np.array([frame.mean() for frame in read_frames(tmp_path / "sync.mp4")])
    decoded, decoded_rate = read_audio(tmp_path / "sync.mp4")
    flash_seconds = int(np.argmax(brightness)) / fps
    click_seconds = int(np.argmax(np.abs(decoded) > 0.3)) / decoded_rate
    assert abs(flash_seconds - click_seconds) <= 1 / fps
    with av.open(str(tmp_path / "sync.mp4")) as container:
        assert container.streams.video[0].average_rate == Fraction(fps).limit_denominator(1001)


def test_drive_writes_video_with_the_speech_and_passes(subject_dir, clip_dir, trained_run, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=1.0)
    out = tmp_path / "out" / "line.mp4"
    assert _drive(subject_dir, trained_run, model_path, speech, out, "--bg", "#00b140", "--passes",
                  "alpha,depth,normal", "--resolution", "64") == 0
    fps = Subject.load(subject_dir).fps
    frames = list(read_frames(out))
    assert frames[0].shape == (64, 64, 3)
    assert abs(_video_seconds(out) - 1.0) <= 1 / fps  # duration equals the speech's within a frame
    decoded, rate = read_audio(out)
    assert rate == 44100 and abs(len(decoded) / rate - 1.0) < 0.03
    passes = out.parent / "line-passes"
    for name in ("alpha", "depth", "normal"):
        assert len(list((passes / name).glob("*.png"))) == len(frames)
    import cv2

    alpha = cv2.imread(str(passes / "alpha" / "000000.png"), cv2.IMREAD_UNCHANGED)
    depth = cv2.imread(str(passes / "depth" / "000000.png"), cv2.IMREAD_UNCHANGED)
    assert alpha.dtype == np.uint16 and depth.dtype == np.uint16
    assert ((depth > 0) <= (alpha > 0)).all()  # depth only where something covers the pixel
    assert (passes / "passes.json").exists()


def test_relit_passes_recompose_the_video_frame(subject_dir, clip_dir, trained_run, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.4)
    out = tmp_path / "lit.mp4"
    assert _drive(subject_dir, trained_run, model_path, speech, out, "--bg", "#204060", "--light", "left",
                  "--passes", "albedo,normal,shading,residual,alpha", "--pass-format", "exr", "--resolution", "64") == 0
    import os

    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
    import cv2

    def read(name: str, index: int) -> np.ndarray:
        image = cv2.imread(str(tmp_path / "lit-passes" / name / f"{index:06d}.exr"), cv2.IMREAD_UNCHANGED)
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)

    frames = list(read_frames(out))
    background = np.array([0x20, 0x40, 0x60], np.float32) / 255
    for index in (0, len(frames) - 1):
        alpha = read("alpha", index)[..., None]
        recomposed = read("albedo", index) * read("shading", index) + read("residual", index) + (1 - alpha) * background
        video = frames[index].astype(np.float32) / 255
        assert np.abs(np.clip(recomposed, 0, 1) - video).mean() < 0.01  # H.264 and 8 bits apart
        normal = read("normal", index)
        assert np.allclose(np.linalg.norm(normal[alpha[..., 0] > 0.5], axis=-1), 1, atol=1e-3)
    # Relit: the shading differs from the clip's own light where the avatar is, the albedo does not.
    avatar = Avatar.load(subject_dir, run=trained_run)
    motion = avatar.motion(speech, motion=model_path)
    own = next(iter(avatar.frames(motion, "#204060", 64)))
    left = next(iter(avatar.frames(motion, "#204060", 64, load_light("left"))))
    seen = own.alpha > 0.5
    assert np.allclose(own.albedo, left.albedo, atol=1e-5)
    assert np.abs(own.shading - left.shading)[seen].mean() > 0.02
    assert np.allclose(read("shading", 0)[seen], left.shading[seen], atol=1e-4)


def test_transparent_gives_prores_and_rgba_frames(subject_dir, clip_dir, trained_run, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.5, rate=22050)
    assert _drive(subject_dir, trained_run, model_path, speech, tmp_path / "clip.mp4", "--bg", "transparent",
                  "--resolution", "64") == 0
    with av.open(str(tmp_path / "clip.mov")) as container:
        assert container.streams.video[0].codec_context.name == "prores"
        assert container.streams.audio
    import cv2

    rgba = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted((tmp_path / "clip-rgba").glob("*.png"))]
    assert len(rgba) == round(0.5 * Subject.load(subject_dir).fps) and rgba[0].shape == (64, 64, 4)
    # The PNG holds the avatar's own alpha and straight (unpremultiplied) colour.
    avatar = Avatar.load(subject_dir, run=trained_run)
    first = next(iter(avatar.frames(avatar.motion(speech, motion=model_path), "transparent", 64)))
    png = cv2.cvtColor(rgba[0], cv2.COLOR_BGRA2RGBA).astype(np.float32) / 255
    assert np.abs(png[..., 3] - first.alpha).max() <= 0.6 / 255
    solid = first.alpha > 0.2
    assert np.abs(png[..., :3] * png[..., 3:] - first.rgb)[solid].max() < 2.5 / 255
    assert not (tmp_path / "clip.mp4").exists()


def test_python_api_in_three_calls(subject_dir, clip_dir, trained_run, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.4)
    avatar = Avatar.load(Subject.load(subject_dir), run=trained_run)
    motion = avatar.motion(speech, motion=model_path)
    assert len(motion["landmarks"]) == round(0.4 * Subject.load(subject_dir).fps)
    on_white = list(avatar.frames(motion, bg="#ffffff", resolution=32))
    on_black = list(avatar.frames(motion, bg="#000000", resolution=32))
    frame = on_white[0]
    assert frame.rgb.shape == (32, 32, 3) and frame.alpha.shape == frame.depth.shape == (32, 32)
    assert frame.depth.max() > 0
    assert np.allclose(np.linalg.norm(frame.normal[frame.normal.any(-1)], axis=-1), 1, atol=1e-4)
    # Over white minus over black is the see-through part: 1 - alpha, in every channel.
    for white, black in zip(on_white, on_black):
        assert np.allclose(white.rgb - black.rgb, (1 - white.alpha)[..., None], atol=1e-4)
    first = next(iter(avatar.drive(speech, bg="#000000", resolution=32, motion=model_path)))
    assert np.allclose(first.rgb, on_black[0].rgb)


@pytest.mark.parametrize("extra, words", [
    (["--bg", "nowhere.png"], "--bg"),
    (["--bg", "#12345"], "#RRGGBB"),
    (["--passes", "alpha,glow"], "glow"),
    (["--light", "sunset"], "sunset"),
    (["--light", "from-bg", "--bg", "transparent"], "from-bg"),
])
def test_bad_settings_are_one_line_errors_with_nothing_written(subject_dir, clip_dir, trained_run, model_path,
                                                               tmp_path, capsys, extra, words):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.3)
    assert _drive(subject_dir, trained_run, model_path, speech, tmp_path / "o.mp4", *extra) == 2
    captured = capsys.readouterr()
    err = captured.out + captured.err
    assert words in err and "Traceback" not in err
    assert not list(tmp_path.glob("o*")) and not list(tmp_path.glob(".o*"))


def test_subject_without_a_run_names_the_command(subject_dir, clip_dir, model_path, tmp_path, capsys):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.3)
    code = main(["drive", str(subject_dir), "--audio", str(speech), "--runs", str(tmp_path / "runs"),
                 "--motion", str(model_path), "--out", str(tmp_path / "o.mp4")])
    captured = capsys.readouterr()
    assert code == 2 and "avatar3d train render" in captured.out + captured.err
    assert not list(tmp_path.glob("*o.mp4"))
