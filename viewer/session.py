"""One browser tab of the viewer: its controls and its render loop.

The loop runs in the session's own thread, never in viser's: it renders whatever is newest
when it is free (the latest camera, frame and settings), so one render is in flight per tab
and intermediate cameras are skipped. Sizes follow the measured render speed: low while the
camera moves (`MOVING_SECONDS` a frame), a steady size while the line plays, picked when play
starts (`PLAYING_SECONDS` a frame), and the full size once the camera has been still for
`SETTLE_SECONDS`.
"""

from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import numpy as np
import torch

from avatar3d.errors import UserError
from avatar3d.export.background import backgrounds, parse_colour
from avatar3d.files import to_uint8
from avatar3d.render.sh import LIGHT_FROM_BACKGROUND, LIGHT_KEEP, LIGHT_PRESETS, key_light, light_from_background
from avatar3d.runtime import console
from viewer.camera import BrowserCamera, browser_view, filmed_camera
from viewer.timeline import CLOCK_PREFIX, AudioClock, Timeline, wav_data_url

MOVING_SECONDS = 0.1
"""Render time aimed at per frame while the camera moves."""
PLAYING_SECONDS = 1 / 12
"""Render time aimed at per frame while the line plays."""
SETTLE_SECONDS = 0.25
"""How long the camera must be still before the full-size frame."""
SMALLEST = 32
"""Smallest image height rendered, pixels."""

PASSES = ("rgb", "alpha", "depth", "normal", "albedo", "shading")
BACKGROUNDS = ("plate", "colour", "image", "transparent")
LIGHT_DIRECTION = "direction"
LIGHTS = (LIGHT_KEEP, LIGHT_FROM_BACKGROUND, *LIGHT_PRESETS, LIGHT_DIRECTION)

# Inline handlers of the <audio> element (inline handlers run where <script> would not): each
# play, pause, seek and time update writes "audio SECONDS playing|paused" into the "audio"
# text field, as typing would, so viser sends it to the server (`AudioClock.report`).
_CLOCK_JS = (
    "var a=this,f=[...document.querySelectorAll('input')].find(e=>e.value.startsWith('" + CLOCK_PREFIX + "'));"
    "if(f){Object.getOwnPropertyDescriptor(HTMLInputElement.prototype,'value').set.call(f,"
    "'" + CLOCK_PREFIX + "'+a.currentTime.toFixed(3)+(a.paused?' paused':' playing'));"
    "f.dispatchEvent(new Event('input',{bubbles:true}));}"
)


def audio_html(samples: np.ndarray, rate: int) -> str:
    """An ``<audio>`` element that plays the samples, loops, and reports its clock."""
    events = " ".join(f'on{name}="{_CLOCK_JS}"' for name in ("play", "pause", "seeked", "timeupdate"))
    return (f'<audio id="avatar3d-audio" controls loop preload="auto" style="width:100%" '
            f'src="{wav_data_url(samples, rate)}" {events}></audio>')


class Pace:
    """Seconds per rendered pixel (a running average), to size frames to a time budget."""

    def __init__(self) -> None:
        self.per_pixel: float | None = None

    def record(self, pixels: int, seconds: float) -> None:
        rate = seconds / max(pixels, 1)
        self.per_pixel = rate if self.per_pixel is None else 0.7 * self.per_pixel + 0.3 * rate

    def height(self, seconds: float, aspect: float, largest: int) -> int:
        """The tallest height (a multiple of 8, ``SMALLEST`` to ``largest``) whose frame of
        ``aspect`` renders in ``seconds``; ``SMALLEST`` before any frame was timed."""
        if self.per_pixel is None:
            return min(SMALLEST, largest)
        height = int((seconds / self.per_pixel / max(aspect, 1e-3)) ** 0.5) // 8 * 8
        return max(min(SMALLEST, largest), min(height, largest))


@dataclass(frozen=True)
class Look:
    """What a frame looks like apart from camera and time: the pass, background, light,
    exposure (stops) and whether the torso shows."""

    render_pass: str = "rgb"
    background: str = "plate"
    colour: tuple[int, int, int] = (0, 177, 64)
    image: str = ""
    light: str = LIGHT_KEEP
    azimuth: float = -45.0
    elevation: float = 20.0
    strength: float = 0.8
    exposure: float = 0.0
    torso: bool = True


def backdrop_of(look: Look) -> tuple:
    """The parts of a `Look` that decide the backdrop."""
    return look.background, look.colour, look.image


@dataclass(frozen=True)
class Job:
    """One frame to render: everything that decides its pixels."""

    camera: BrowserCamera
    frame: int
    height: int
    look: Look
    generation: int  # the timeline's (`Viewer.regenerate` makes a new one)


class Session:
    """The viewer in one browser tab (a `viser.ClientHandle`).

    Args:
        client: The tab.
        viewer: The `viewer.server.Viewer` (avatar, timeline, settings).
    """

    def __init__(self, client, viewer) -> None:
        self.client = client
        self.viewer = viewer
        self.clock = AudioClock()
        self.pace = Pace()
        self.look = Look()
        self.frames_shown = 0
        self.last_job: Job | None = None
        self._moved_at = 0.0
        self._play_height: int | None = None
        self._play_start: tuple[int, float] | None = None  # (frame, time) of a silent play's start
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._plate = viewer.avatar.subject.background().astype(np.float32) / 255
        self._backdrop: np.ndarray | None = self._plate
        self._light: torch.Tensor | None = None
        self._motion_lock = threading.Lock()
        self._motion_busy = False
        self._motion_wanted: dict = {}
        self._build_gui()
        self.reset_camera()
        client.camera.on_update(self._camera_moved)
        self._thread = threading.Thread(target=self._loop, name=f"viewer-client-{client.client_id}", daemon=True)
        self._thread.start()

    # --- controls ---------------------------------------------------------------------------

    def _build_gui(self) -> None:
        timeline = self.viewer.timeline
        self.client.gui.add_markdown(f"**avatar3d** · {self.viewer.avatar.subject.root.name} · {timeline.label}")
        self.status = self.client.gui.add_markdown("starting…")
        self._time_controls(timeline)
        self._look_controls()
        if self.viewer.can_regenerate:
            self._motion_controls()
        self._output_controls()

    def _time_controls(self, timeline: Timeline) -> None:
        gui = self.client.gui
        with gui.add_folder("Time"):
            self.frame_slider = gui.add_slider("frame", 0, max(len(timeline) - 1, 1), 1, initial_value=0)
            self.frame_slider.on_update(lambda _: self._changed())
            if timeline.audio is not None:
                gui.add_html(audio_html(*timeline.audio))
                self.clock_field = gui.add_text("audio", initial_value=f"{CLOCK_PREFIX}0.000 paused",
                                                hint="The audio player's time, which the frames follow.")
                self.clock_field.on_update(self._clock_report)
            else:
                self.play = gui.add_checkbox("play", initial_value=False, hint="Play the frames (there is no audio).")
                self.play.on_update(self._silent_play)

    def _look_controls(self) -> None:
        gui = self.client.gui
        with gui.add_folder("Look"):
            self.pass_menu = gui.add_dropdown("pass", PASSES, initial_value="rgb")
            self.light_menu = gui.add_dropdown("light", LIGHTS, initial_value=LIGHT_KEEP,
                                               hint="keep: the clip's own; from-bg: a rough estimate from the "
                                                    "background; direction: a key light from the angles below.")
            self.azimuth = gui.add_slider("azimuth °", -180.0, 180.0, 5.0, initial_value=Look.azimuth, visible=False)
            self.elevation = gui.add_slider("elevation °", -90.0, 90.0, 5.0, initial_value=Look.elevation,
                                            visible=False)
            self.strength = gui.add_slider("strength", 0.0, 2.0, 0.05, initial_value=Look.strength, visible=False)
            self.exposure = gui.add_slider("exposure", -3.0, 3.0, 0.1, initial_value=0.0, hint="Stops of light added.")
            self.background_menu = gui.add_dropdown("background", BACKGROUNDS, initial_value="plate")
            self.colour = gui.add_rgb("colour", initial_value=Look.colour, visible=False)
            self.image_path = gui.add_text("image file", initial_value="", visible=False,
                                           hint="An image or video on the server.")
            self.torso = gui.add_checkbox("torso", initial_value=True)
            self.resolution = gui.add_slider("resolution", SMALLEST, self.viewer.max_resolution, 8,
                                             initial_value=self.viewer.resolution,
                                             hint="Image height when the camera is still.")
        for control in (self.pass_menu, self.light_menu, self.azimuth, self.elevation, self.strength, self.exposure,
                        self.background_menu, self.colour, self.image_path, self.torso, self.resolution):
            control.on_update(lambda _: self._look_changed())

    def _motion_controls(self) -> None:
        gui = self.client.gui
        with gui.add_folder("Motion"):
            self.mouth = gui.add_slider("mouth amplitude", 0.0, 3.0, 0.05, initial_value=1.0)
            self.blink = gui.add_dropdown("blinks", ("auto", "periodic", "none"), initial_value="auto")
            self.pose = gui.add_dropdown("pose", ("train", "static", "generated"), initial_value="train")
        for control in (self.mouth, self.blink, self.pose):
            control.on_update(lambda _: self._regenerate())

    def _output_controls(self) -> None:
        gui = self.client.gui
        with gui.add_folder("Output"):
            gui.add_button("filmed camera", hint="Back to the camera that filmed the subject.").on_click(
                lambda _: self.reset_camera())
            gui.add_button("save PNG", hint="This frame at full size, downloaded by the browser.").on_click(
                lambda _: self._save_png())
            if self.viewer.can_regenerate:
                self.write_button = gui.add_button("write mp4", hint="The line as video with audio, through "
                                                   "`avatar3d drive`, into the --out folder on the server.")
                self.write_button.on_click(lambda _: self._write_video())

    def reset_camera(self) -> None:
        """Puts the tab's camera where the subject was filmed from."""
        filmed = filmed_camera(self.viewer.avatar.model, self.viewer.timeline.conditions)
        camera = self.client.camera
        with self.client.atomic():
            camera.fov = filmed.fov
            camera.up_direction = filmed.up
            camera.position = filmed.position
            camera.look_at = filmed.look_at

    def _changed(self) -> None:
        self._wake.set()

    def _camera_moved(self, _camera) -> None:
        self._moved_at = time.monotonic()
        self._wake.set()

    def _clock_report(self, _event) -> None:
        was_playing = self.clock.playing
        if self.clock.report(self.clock_field.value):
            if self.clock.playing and not was_playing:
                self._play_height = None
            if not self.clock.playing:  # paused or sought while paused: the slider shows where
                self.frame_slider.value = self.viewer.timeline.frame_at(self.clock.seconds())
            self._wake.set()

    def _silent_play(self, _event) -> None:
        self._play_start = (int(self.frame_slider.value), time.monotonic()) if self.play.value else None
        self._play_height = None
        self._wake.set()

    def _look_changed(self) -> None:
        light, background = self.light_menu.value, self.background_menu.value
        for control in (self.azimuth, self.elevation, self.strength):
            control.visible = light == LIGHT_DIRECTION
        self.colour.visible = background == "colour"
        self.image_path.visible = background == "image"
        look = Look(self.pass_menu.value, background, tuple(int(c) for c in self.colour.value), self.image_path.value,
                    light, float(self.azimuth.value), float(self.elevation.value), float(self.strength.value),
                    float(self.exposure.value), bool(self.torso.value))
        try:
            if backdrop_of(look) != backdrop_of(self.look):  # not on every exposure or pass change: it may read a file
                self._backdrop = self._background(look)
            self._light = self._resolve_light(look)
        except UserError as error:
            self.client.add_notification("Cannot use that", str(error), color="red", auto_close_seconds=8.0)
            self.background_menu.value = "plate"
            return
        self.look = look
        self._wake.set()

    def _background(self, look: Look) -> np.ndarray | None:
        """(H, W, 3) float backdrop of the filmed view, or None (transparent)."""
        if look.background == "transparent":
            return None
        if look.background == "colour":
            return np.broadcast_to(parse_colour("#{:02x}{:02x}{:02x}".format(*look.colour)), (8, 8, 3)).copy()
        if look.background == "image":
            if not look.image:
                return self._plate
            return next(backgrounds(look.image, self.viewer.avatar.subject.background(), len(self._plate)))
        return self._plate

    def _resolve_light(self, look: Look) -> torch.Tensor | None:
        if look.light == LIGHT_KEEP:
            return None
        if look.light == LIGHT_FROM_BACKGROUND:
            return light_from_background(self._plate if self._backdrop is None else self._backdrop)
        if look.light == LIGHT_DIRECTION:
            return key_light(look.azimuth, look.elevation, look.strength)
        return LIGHT_PRESETS[look.light]

    def _regenerate(self) -> None:
        """Remakes the motion with the panel's settings: one remake at a time, then one more
        with the newest settings if they changed meanwhile (a dragged slider sends many)."""
        self._motion_wanted = {"mouth_amp": float(self.mouth.value), "blink": self.blink.value,
                               "pose": self.pose.value}
        self.status.content = "generating motion…"
        with self._motion_lock:
            if self._motion_busy:
                return
            self._motion_busy = True
        threading.Thread(target=self._regenerate_until_current, daemon=True).start()

    def _regenerate_until_current(self) -> None:
        while True:
            settings = self._motion_wanted
            try:
                self.viewer.regenerate(**settings)
            except UserError as error:
                self.client.add_notification("Motion failed", str(error), color="red", auto_close_seconds=8.0)
            with self._motion_lock:
                if self._motion_wanted == settings:
                    self._motion_busy = False
                    break
        self._wake.set()

    # --- rendering --------------------------------------------------------------------------

    def stop(self) -> None:
        """Ends the render loop (the tab has gone)."""
        self._stop.set()
        self._wake.set()

    def _playing(self) -> bool:
        return self.clock.playing or self._play_start is not None

    def _current_frame(self) -> int:
        timeline = self.viewer.timeline
        if self.clock.playing:
            return timeline.frame_at(self.clock.seconds())
        if self._play_start is not None:
            first, since = self._play_start
            return (first + int((time.monotonic() - since) * timeline.fps)) % len(timeline)
        return min(int(self.frame_slider.value), len(timeline) - 1)

    def next_job(self) -> Job | None:
        """The frame to render now, or None when the one shown is still right."""
        camera = BrowserCamera.of(self.client.camera)
        full = int(self.resolution.value)
        if time.monotonic() - self._moved_at < SETTLE_SECONDS:
            height = self.pace.height(MOVING_SECONDS, camera.aspect, full)
        elif self._playing():
            if self._play_height is None:
                self._play_height = self.pace.height(PLAYING_SECONDS, camera.aspect, full)
            height = self._play_height
        else:
            height = full
        job = Job(camera, self._current_frame(), height, self.look, self.viewer.generation)
        return None if job == self.last_job else job

    def _wait_seconds(self) -> float:
        if self._playing():
            return 0.01
        if time.monotonic() - self._moved_at < SETTLE_SECONDS:
            return SETTLE_SECONDS / 2
        return 0.5

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._wait_seconds())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                job = self.next_job()
                if job is not None:
                    self._show(job)
            except Exception as error:  # a tab that left mid-render, or a render that failed: log, go on
                if self._stop.is_set():
                    break
                console.print(f"[red]viewer: client {self.client.client_id}: {error}[/red]")
                console.print(traceback.format_exc(), markup=False, highlight=False)
                time.sleep(0.5)

    def render(self, job: Job) -> np.ndarray:
        """(H, W, 3) uint8 image of a job."""
        timeline = self.viewer.timeline
        conditions = timeline.conditions.select(min(job.frame, len(timeline) - 1)).to(self.viewer.device)
        view = browser_view(job.camera, job.height)
        backdrop = None if self._backdrop is None else torch.from_numpy(self._backdrop)
        out = self.viewer.avatar.model.render_frame(conditions, backdrop, view=view, light=self._light,
                                                    exposure=job.look.exposure, with_torso=job.look.torso)
        return display(out, job.look.render_pass, view.rotation, backdrop is None)

    def _show(self, job: Job) -> None:
        start = time.perf_counter()
        image = self.render(job)
        seconds = time.perf_counter() - start
        self.pace.record(image.shape[0] * image.shape[1], seconds)
        if self._stop.is_set():  # the tab left while this rendered
            return
        self.client.scene.set_background_image(image, format="jpeg", jpeg_quality=90)
        self.last_job = job
        self.frames_shown += 1
        if self._playing():
            self.frame_slider.value = job.frame
        self.status.content = (f"{1 / max(seconds, 1e-6):.1f} frames/s · {image.shape[1]}×{image.shape[0]} px · "
                               f"frame {job.frame + 1}/{len(self.viewer.timeline)}")

    def _save_png(self) -> None:
        import cv2

        job = self.next_job() or self.last_job
        if job is None:  # nothing shown yet
            return
        job = replace(job, height=int(self.resolution.value))
        image = self.render(job)
        ok, png = cv2.imencode(".png", image[..., ::-1])
        if ok:
            name = f"{self.viewer.avatar.subject.root.name}-frame{job.frame:05d}.png"
            self.client.send_file_download(name, png.tobytes(), save_immediately=True)

    def _write_video(self) -> None:
        self.write_button.disabled = True
        look = self.look
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(self.viewer.config.out) / f"{self.viewer.avatar.subject.root.name}-{stamp}.mp4"
        self.client.add_notification("Writing video", f"{out} (see the server's console)", loading=True,
                                     auto_close_seconds=5.0)

        def write() -> None:
            try:
                path = self.viewer.write_video(out, look, self._light)
                self.client.add_notification("Video written", str(path), auto_close_seconds=15.0)
            except UserError as error:
                self.client.add_notification("Video failed", str(error), color="red", auto_close_seconds=15.0)
            finally:
                self.write_button.disabled = False

        threading.Thread(target=write, daemon=True).start()


CHECKER = 16
"""Checkerboard square (pixels) behind a transparent avatar."""


def display(out: dict[str, torch.Tensor], render_pass: str, view_rotation: torch.Tensor,
            transparent: bool) -> np.ndarray:
    """(H, W, 3) uint8 picture of a pass of `Avatar.render_frame`'s output: colour over a
    checkerboard where transparent, grey alpha, depth (near bright), normals turned into the
    view (as 0.5 + 0.5 n), albedo and shading clipped to [0, 1]."""
    alpha = out["alpha"]
    if render_pass == "rgb":
        image = out["rgb"]
        if transparent:
            height, width = image.shape[:2]
            rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            checker = (((rows // CHECKER + columns // CHECKER) % 2) * 0.25 + 0.5)[..., None].to(image)
            image = image + (1 - alpha) * checker
    elif render_pass == "alpha":
        image = alpha.expand(-1, -1, 3)
    elif render_pass == "depth":
        depth = out["depth"]
        seen = depth > 0
        near, far = (depth[seen].min(), depth[seen].max()) if seen.any() else (0.0, 1.0)
        image = torch.where(seen, 1 - 0.8 * (depth - near) / max(float(far - near), 1e-6), 0.0).expand(-1, -1, 3)
    elif render_pass == "normal":
        normal = out["normal"] @ view_rotation.to(out["normal"])  # filmed camera -> view: R^T n, row-wise
        image = torch.where((out["normal"] != 0).any(-1, keepdim=True), 0.5 + 0.5 * normal, 0.0)
    else:
        image = out[render_pass]
    return to_uint8(image.cpu().numpy())
