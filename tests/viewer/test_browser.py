"""The viewer in a real browser: Debian's Chromium driven by Playwright (`make browser` installs it)."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (make browser installs it)")

# Headless Chromium has no GPU here: viser's WebGL canvas runs on SwiftShader; the audio
# element may play without a click.
BROWSER_ARGS = ["--autoplay-policy=no-user-gesture-required", "--use-gl=angle", "--use-angle=swiftshader",
                "--enable-unsafe-swiftshader", "--mute-audio"]
VIEWPORT = {"width": 900, "height": 600}
CANVAS = (slice(60, 560), slice(20, 560))
"""Rows and columns of the screenshot where the avatar shows (left of viser's control panel)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"no {what} within {seconds} s")


def canvas(page) -> np.ndarray:
    """The avatar's part of a screenshot, (H, W, 3) float in [0, 1]."""
    import cv2

    shot = cv2.imdecode(np.frombuffer(page.screenshot(), np.uint8), cv2.IMREAD_COLOR)
    return shot[CANVAS].astype(np.float32) / 255


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def viewer(subject_dir, trained_run):
    from viewer.config import ViewConfig
    from viewer.server import Viewer

    viewer = Viewer(ViewConfig(subject=subject_dir, run=trained_run, port=free_port(), resolution=96)).start()
    yield viewer
    viewer.stop()


def open_tab(browser, viewer):
    """A new tab on the viewer, and its session once it shows a full-size frame."""
    known = set(viewer.sessions)
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(viewer.url)
    session = wait_for(lambda: next((s for c, s in list(viewer.sessions.items()) if c not in known), None), 60,
                       "session")
    wait_for(lambda: session.last_job is not None and session.last_job.height == 96, 60, "full-size frame")
    return page, session


def settled_frame(session, after: int, what: str) -> None:
    """Waits until the session showed a new full-size frame after ``after`` frames and stays still."""
    wait_for(lambda: session.frames_shown > after and session.last_job.height == 96 and session.next_job() is None,
             60, what)
    time.sleep(0.3)  # the browser draws it


def test_tab_shows_avatar_light_and_play(browser, viewer):
    page, session = open_tab(browser, viewer)
    settled_frame(session, 0, "first frame")
    first = canvas(page)
    assert first.std() > 0.05, "the canvas is blank"

    # The light control (a Mantine select in viser's panel) changes the picture.
    shown = session.frames_shown
    page.get_by_role("textbox", name="light").or_(page.locator("input[value='keep']")).first.click()
    page.get_by_role("option", name="left", exact=True).click()
    wait_for(lambda: session.look.light == "left", 10, "light change")
    settled_frame(session, shown, "relit frame")
    relit = canvas(page)
    assert np.abs(relit - first).mean() > 0.01, "the light control did not change the picture"

    # Save PNG: the browser downloads the frame at full size.
    import cv2

    with page.expect_download(timeout=60_000) as download:
        page.get_by_role("button", name="save PNG").click()
    saved = cv2.imread(download.value.path())
    assert download.value.suggested_filename.endswith("-frame00000.png")
    assert saved.shape[0] == 96 and saved.shape[1] == round(96 * session.last_job.camera.aspect) and saved.std() > 10

    # Play: the audio element plays and the frames follow its clock.
    assert session.last_job.frame == 0
    state = page.evaluate("""async () => { const a = document.querySelector('audio');
        await a.play(); await new Promise(r => setTimeout(r, 1500)); return [a.paused, a.currentTime]; }""")
    assert state[0] is False and state[1] > 0.5, f"the audio did not play: {state}"
    wait_for(lambda: session.clock.playing, 10, "audio clock report")
    frames = wait_for(lambda: session.last_job.frame >= 10 and session.last_job.frame, 20, "frames following the audio")
    assert abs(frames / viewer.timeline.fps - session.clock.seconds()) < 1.0
    page.evaluate("document.querySelector('audio').pause()")
    wait_for(lambda: not session.clock.playing, 10, "pause report")
    page.close()


def test_drag_turns_the_view_and_a_closed_tab_leaves_the_others_served(browser, viewer):
    page, session = open_tab(browser, viewer)
    other, other_session = open_tab(browser, viewer)
    settled_frame(session, 0, "first frame")
    before, camera = canvas(page), session.last_job.camera

    # The second tab leaves in the middle of a render (its drag starts one); the server goes on
    # serving the first.
    shown = other_session.frames_shown
    other.mouse.move(300, 300)
    other.mouse.down()
    other.mouse.move(340, 300, steps=4)
    other.mouse.up()
    wait_for(lambda: other_session.frames_shown > shown, 10, "the second tab's render")
    other.close()
    wait_for(lambda: other_session not in viewer.sessions.values(), 10, "the closed tab's session to end")

    shown = session.frames_shown
    page.mouse.move(300, 300)
    page.mouse.down()
    for step in range(1, 9):
        page.mouse.move(300 + 8 * step, 300, steps=2)
        time.sleep(0.03)
    page.mouse.up()
    wait_for(lambda: session.last_job.camera != camera, 10, "camera change")
    settled_frame(session, shown, "frame after the drag")
    assert np.abs(canvas(page) - before).mean() > 0.01, "the drag did not change the picture"
    page.close()


def test_listens_on_loopback_only(viewer):
    assert viewer.server.get_host() == "127.0.0.1"
    with socket.create_connection(("127.0.0.1", viewer.server.get_port()), timeout=2):
        pass
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    outside = [a for a in addresses if not a.startswith("127.")]
    for address in outside:
        with pytest.raises(OSError):
            socket.create_connection((address, viewer.server.get_port()), timeout=2).close()


def avatar3d(*args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "avatar3d.cli", "--threads", "1", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **kwargs)


def test_view_command_as_a_new_user(browser, subject_dir, trained_run):
    """``avatar3d view`` shows the avatar in the browser within 60 s, and a drag changes it."""
    port = free_port()
    started = time.monotonic()
    process = avatar3d("view", subject_dir, "--run", trained_run, "--port", port, "--resolution", 96)
    try:
        page = browser.new_page(viewport=VIEWPORT)
        wait_for(lambda: _loads(page, port), 60, "page")
        # The status line reads "N frames/s · W×H px · frame ..." once a frame is shown.
        page.get_by_text("frames/s").first.wait_for(timeout=60_000 - 1000 * (time.monotonic() - started))
        time.sleep(1.0)
        before = canvas(page)
        assert before.std() > 0.05
        page.mouse.move(300, 300)
        page.mouse.down()
        page.mouse.move(360, 300, steps=6)
        page.mouse.up()
        time.sleep(4.0)  # the low-resolution frames while moving, then the full-size one
        assert np.abs(canvas(page) - before).mean() > 0.01
        page.close()
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert f"http://127.0.0.1:{port}" in out


def _loads(page, port) -> bool:
    try:
        page.goto(f"http://127.0.0.1:{port}")
        return True
    except Exception:
        time.sleep(0.5)
        return False


def test_bad_input_exits_2_with_one_line(subject_dir, trained_run, tmp_path):
    """No trained run, an unreadable audio file, a port in use: one line each, exit 2."""
    (tmp_path / "noise.wav").write_bytes(b"not audio at all")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "avatar3d train render": ("view", subject_dir, "--runs", tmp_path / "empty"),
            "noise.wav": ("view", subject_dir, "--run", trained_run, "--audio", tmp_path / "noise.wav"),
            f"--port {port}: already in use on 127.0.0.1; try --port": ("view", subject_dir, "--run", trained_run,
                                                                       "--port", port),
        }
        for message, args in cases.items():
            process = avatar3d(*args)
            out, err = process.communicate(timeout=120)
            assert process.returncode == 2, (args, err)
            assert message in err and "Traceback" not in err, err
            assert len(err.strip().splitlines()) == 1, err
