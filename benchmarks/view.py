"""Frames/s and delays of ``avatar3d view`` as a browser sees them (headless Chromium).

Usage::

    python benchmarks/view.py SUBJECT [--run RUN] [--resolution 256] [--seconds 5] [--viewport 900x600]
                              [--png FILE]

Starts the viewer on the subject's avatar (full size ``--resolution`` pixels high, as wide
as the page: 1.5 times as wide at the default ``--viewport``, square at 800x800), opens it in Debian's
Chromium through Playwright and measures, from the server's side:

- first frame: seconds from opening the page to the first full-size frame sent;
- still: frames/s of full-size frames when the camera stands and the frame changes;
- moving: frames/s while the mouse keeps orbiting the camera, and the heights used;
- move -> frame: delay from a mouse move to the first frame of the new camera sent
  (the low-resolution one), and to the full-size one;
- playing: frames/s while the clip's audio plays, and the steady height used.

The browser runs on the same CPU (its WebGL on SwiftShader), so on a small machine it takes
some of the time. ``--png`` saves a screenshot of the page.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "viewer"))
from test_browser import BROWSER_ARGS, CHROMIUM, free_port, wait_for  # noqa: E402  (one browser set-up)

from viewer.config import ViewConfig  # noqa: E402
from viewer.server import Viewer  # noqa: E402


def drag(page, seconds: float) -> None:
    """Orbits by moving the mouse back and forth with the button down for ``seconds``."""
    page.mouse.move(120, 300)
    page.mouse.down()
    end, step = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        step += 1
        page.mouse.move(120 + 40 * ((step // 20) % 2 * 2 - 1) * (step % 20) / 20, 300)
        time.sleep(0.02)
    page.mouse.up()


def measure(session, page, viewer, seconds: float) -> dict:
    full = int(session.resolution.value)

    def settle() -> bool:
        return session.last_job is not None and session.last_job.height == full and session.next_job() is None

    wait_for(settle, 60, "a still full-size frame")

    # Still: full-size frames, one new frame index each.
    shown, start = session.frames_shown, time.monotonic()
    count = 0
    while time.monotonic() - start < seconds:
        count += 1
        session.frame_slider.value = count % len(viewer.timeline)
        wait_for(lambda: session.frames_shown > shown + count - 1 and settle(), 60, "a still frame")
    still = count / (time.monotonic() - start)

    # Moving.
    shown, start = session.frames_shown, time.monotonic()
    drag(page, seconds)
    moving = (session.frames_shown - shown) / (time.monotonic() - start)
    moving_height = session.last_job.height
    wait_for(settle, 60, "the full-size frame after moving")

    # Delay from a move to the first frame of the new camera, then to the full-size one.
    first_delays, full_delays = [], []
    for n in range(5):
        camera, x = session.last_job.camera, 100 + 10 * (n % 2)
        page.mouse.move(x, 300)
        page.mouse.down()
        start = time.monotonic()
        page.mouse.move(x + 6, 300)
        page.mouse.up()
        wait_for(lambda: session.last_job.camera != camera, 30, "a frame of the new camera")
        first_delays.append(time.monotonic() - start)
        wait_for(settle, 60, "the full-size frame")
        full_delays.append(time.monotonic() - start)

    # Playing, with the audio element's clock.
    row = {"first_frame_s": None, "still_fps": still, "moving_fps": moving, "moving_height": moving_height,
           "move_to_frame_s": statistics.median(first_delays), "move_to_full_s": statistics.median(full_delays)}
    if viewer.timeline.audio is not None:
        shown = session.frames_shown
        page.evaluate("document.querySelector('audio').play()")
        wait_for(lambda: session.clock.playing, 10, "the audio clock")
        start = time.monotonic()
        time.sleep(seconds)
        row["playing_fps"] = (session.frames_shown - shown) / (time.monotonic() - start)
        row["playing_height"] = session.last_job.height
        page.evaluate("document.querySelector('audio').pause()")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--run", type=Path)
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--viewport", default="900x600", help="browser page size, WIDTHxHEIGHT")
    parser.add_argument("--png", type=Path)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    viewer = Viewer(ViewConfig(subject=args.subject, run=args.run, port=free_port(),
                               resolution=args.resolution)).start()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
            width, height = map(int, args.viewport.split("x"))
            page = browser.new_page(viewport={"width": width, "height": height})
            start = time.monotonic()
            page.goto(viewer.url)
            session = wait_for(lambda: next(iter(viewer.sessions.values()), None), 60, "a session")
            wait_for(lambda: session.last_job is not None and session.last_job.height == args.resolution, 60,
                     "the first full-size frame")
            first = time.monotonic() - start
            row = measure(session, page, viewer, args.seconds)
            row["first_frame_s"] = first
            if args.png:
                session.reset_camera()
                session.frame_slider.value = 0
                time.sleep(1.0)
                wait_for(lambda: session.last_job.height == args.resolution and session.next_job() is None, 60,
                         "the filmed view")
                time.sleep(1.0)
                page.screenshot(path=str(args.png))
            browser.close()
    finally:
        viewer.stop()
    print(f"\n{args.subject.name}, full size {args.resolution} px high, browser page {args.viewport}")
    print(f"{'measure':<28}{'value':>10}")
    labels = {"first_frame_s": "first frame (s)", "still_fps": "still, full size (frames/s)",
              "moving_fps": "moving (frames/s)", "moving_height": "moving, height (px)",
              "move_to_frame_s": "move -> new frame (s)", "move_to_full_s": "move -> full size (s)",
              "playing_fps": "playing (frames/s)", "playing_height": "playing, height (px)"}
    for key, label in labels.items():
        if key in row:
            print(f"{label:<28}{row[key]:>10.2f}")


if __name__ == "__main__":
    main()
