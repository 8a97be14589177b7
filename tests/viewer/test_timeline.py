"""What the viewer plays: a line of speech (motion made at start, remade with other settings,
written out as video), a motion file, the training frames."""

from pathlib import Path

import av
import numpy as np
import pytest

from avatar3d.errors import BadInputError
from avatar3d.render.sh import key_light
from viewer.config import ViewConfig
from viewer.server import Viewer
from viewer.session import Look
from viewer.timeline import motion_timeline, training_timeline


@pytest.fixture(scope="module")
def speech_viewer(subject_dir, trained_run, model_path):
    """A viewer of the subject's own audio as a new line (not started: no browser needed)."""
    return Viewer(ViewConfig(subject=subject_dir, run=trained_run, audio=subject_dir / "audio.wav",
                             motion_model=model_path))


def test_speech_is_timed_by_its_audio_and_remade_with_other_settings(speech_viewer):
    timeline = speech_viewer.timeline
    samples, rate = timeline.audio
    assert abs(len(timeline) - len(samples) / rate * timeline.fps) <= 1
    assert timeline.frame_at(-1.0) == 0 and timeline.frame_at(1e6) == len(timeline) - 1
    assert timeline.frame_at(1.0) == int(timeline.fps)
    generation = speech_viewer.generation
    speech_viewer.regenerate(mouth_amp=0.0, blink="none", pose="static")
    still = speech_viewer.timeline.conditions
    assert speech_viewer.generation == generation + 1
    assert float(still.rotation.std(0).max()) < 1e-6  # a static pose
    moving = timeline.conditions.mouth_opening()
    assert float(still.mouth_opening().std()) < 0.2 * float(moving.std())  # mouth amplitude 0


def test_write_video_drives_the_line_as_shown(speech_viewer, tmp_path):
    """The video has the line's audio, and its frames the tab's background, light and motion settings."""
    settings = {"mouth_amp": 2.0, "blink": "none", "pose": "static"}
    speech_viewer.regenerate(**settings)
    look = Look(background="colour", colour=(0, 0, 255), light="direction", azimuth=60.0)
    light = key_light(look.azimuth, look.elevation)
    out = speech_viewer.write_video(tmp_path / "line.mp4", look, light)
    with av.open(str(out)) as container:
        kinds = sorted(stream.type for stream in container.streams)
        written = [frame.to_ndarray(format="rgb24") / 255 for _, frame in zip(range(8), container.decode(video=0))]
    assert kinds == ["audio", "video"]
    avatar = speech_viewer.avatar
    motion = avatar.motion(avatar.subject.root / "audio.wav", motion=speech_viewer.config.motion_model, **settings)
    shown = [frame.rgb for _, frame in zip(range(8), avatar.frames(motion, "#0000ff", light=light))]
    plain = [frame.rgb for _, frame in zip(range(8), avatar.frames(motion, "plate"))]
    error = np.mean([np.abs(w - s).mean() for w, s in zip(written, shown)])
    assert error < 0.03 < np.mean([np.abs(w - p).mean() for w, p in zip(written, plain)])


def test_motion_file_plays_silent_or_with_audio(speech_viewer, tmp_path):
    avatar = speech_viewer.avatar
    motion = avatar.motion(avatar.subject.root / "audio.wav", motion=speech_viewer.config.motion_model)
    np.savez(tmp_path / "motion.npz", **motion)
    silent = motion_timeline(avatar, tmp_path / "motion.npz")
    assert silent.audio is None and len(silent) == len(motion["landmarks"])
    assert np.allclose(silent.conditions.landmarks.numpy(), motion["landmarks"])
    assert motion_timeline(avatar, tmp_path / "motion.npz", avatar.subject.root / "audio.wav").audio is not None
    np.savez(tmp_path / "partial.npz", landmarks=motion["landmarks"])
    with pytest.raises(BadInputError, match="partial.npz: no rotation, translation, eye_opening"):
        motion_timeline(avatar, tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(BadInputError, match="junk.npz: not a readable motion file"):
        motion_timeline(avatar, tmp_path / "junk.npz")


def test_training_frames_play_with_the_clip_audio(speech_viewer):
    timeline = training_timeline(speech_viewer.avatar)
    assert len(timeline) == speech_viewer.avatar.subject.num_frames
    assert timeline.audio is not None and timeline.audio[1] == 16000
    assert timeline.conditions.frame_ids.tolist() == list(range(len(timeline)))


def test_a_dragged_slider_remakes_the_motion_once_more_at_most():
    """Many motion-setting changes while a remake runs: the running one finishes, then one more
    with the newest settings."""
    import threading
    import time
    from types import SimpleNamespace

    from viewer.session import Session

    made = []

    def slow_regenerate(**settings):
        made.append(settings["mouth_amp"])
        time.sleep(0.3)

    session = Session.__new__(Session)  # its motion controls only: no browser
    session.viewer = SimpleNamespace(regenerate=slow_regenerate)
    session.status = SimpleNamespace(content="")
    session.blink, session.pose = SimpleNamespace(value="auto"), SimpleNamespace(value="train")
    session._motion_lock, session._motion_busy, session._wake = threading.Lock(), False, threading.Event()
    for amplitude in (0.5, 0.6, 0.7, 0.8):
        session.mouth = SimpleNamespace(value=amplitude)
        session._regenerate()
        time.sleep(0.02)
    assert session._wake.wait(5) and not session._motion_busy
    assert made == [0.5, 0.8]
