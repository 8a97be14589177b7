"""The viewer's server: the avatar, what plays, and one `Session` per browser tab."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from avatar3d.drive import Avatar, drive
from avatar3d.errors import BadArgumentError
from avatar3d.export.config import DriveConfig
from avatar3d.runtime import console
from viewer.camera import filmed_camera
from viewer.config import LOOPBACK, ViewConfig
from viewer.session import LIGHT_DIRECTION, Look, Session
from viewer.timeline import Timeline, motion_timeline, speech_timeline, training_timeline


def check_port(host: str, port: int) -> None:
    """Raises a one-line error when ``port`` is taken on ``host``, suggesting a free one."""

    def free(candidate: int) -> bool:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
            try:
                probe.bind((host, candidate))
            except OSError:
                return False
        return True

    if not free(port):
        other = next((p for p in range(port + 1, min(port + 100, 65536)) if free(p)), None)
        hint = f"; try --port {other}" if other else "; choose another with --port"
        raise BadArgumentError(f"--port {port}: already in use on {host}{hint}")


class Viewer:
    """The avatar of a subject served to browsers (`start`, `stop`).

    Args:
        config: The command's settings.
        device: Where to render.
    """

    def __init__(self, config: ViewConfig, device: torch.device | str = "cpu") -> None:
        self.config = config
        self.device = torch.device(device)
        self.avatar = Avatar.load(config.subject, config.run, config.runs, self.device)
        self.can_regenerate = config.audio is not None and config.motion is None
        self.timeline = self._first_timeline()
        self.generation = 0
        self.resolution = config.resolution or self.avatar.subject.resolution
        self.max_resolution = max(self.resolution, self.avatar.subject.resolution)
        self.motion_settings: dict = {}
        self.sessions: dict[int, Session] = {}
        self._lock = threading.Lock()
        self.server = None

    def _first_timeline(self) -> Timeline:
        if self.config.motion is not None:
            return motion_timeline(self.avatar, self.config.motion, self.config.audio)
        if self.config.audio is not None:
            return speech_timeline(self.avatar, self.config.audio, motion=self.config.motion_model)
        return training_timeline(self.avatar)

    @property
    def url(self) -> str:
        host = self.config.host if ":" not in self.config.host else f"[{self.config.host}]"
        return f"http://{host}:{self.server.get_port()}"

    def start(self) -> "Viewer":
        """Starts serving (returns at once; the server runs in its own threads)."""
        import viser

        # A tab that closes while its frame renders gets that frame anyway, into the void: not worth a warning.
        warnings.filterwarnings("ignore", message="Queued a .* on a closed connection", category=UserWarning)
        check_port(self.config.host, self.config.port)
        self.server = viser.ViserServer(host=self.config.host, port=self.config.port, verbose=False)
        self.server.gui.configure_theme(control_width="medium", show_share_button=False)
        self.server.scene.set_up_direction("+y")
        filmed = filmed_camera(self.avatar.model, self.timeline.conditions)
        initial = self.server.initial_camera
        initial.position, initial.look_at, initial.up, initial.fov = (filmed.position, filmed.look_at, filmed.up,
                                                                      filmed.fov)
        self.server.on_client_connect(self._connect)
        self.server.on_client_disconnect(self._disconnect)
        return self

    def _connect(self, client) -> None:
        session = Session(client, self)
        with self._lock:
            self.sessions[client.client_id] = session

    def _disconnect(self, client) -> None:
        with self._lock:
            session = self.sessions.pop(client.client_id, None)
        if session is not None:
            session.stop()

    def stop(self) -> None:
        with self._lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.stop()
        if self.server is not None:
            self.server.stop()

    def regenerate(self, **settings) -> None:
        """Generates the line's motion again with other `MotionConfig` settings (mouth_amp, blink, pose)."""
        timeline = speech_timeline(self.avatar, self.config.audio, motion=self.config.motion_model, **settings)
        with self._lock:
            self.timeline, self.motion_settings = timeline, settings
            self.generation += 1

    def write_video(self, out: Path, look: Look, light: torch.Tensor | None) -> Path:
        """Writes the line, as the tab shows it, with ``avatar3d drive``; returns the video's path."""
        out.parent.mkdir(parents=True, exist_ok=True)
        light_spec = look.light
        if look.light == LIGHT_DIRECTION:  # drive takes a light file for a light that has no name
            light_spec = str(out.with_suffix(".light.txt"))
            np.savetxt(light_spec, light.numpy())
        background = {"colour": "#{:02x}{:02x}{:02x}".format(*look.colour), "image": look.image or "plate"}
        config = DriveConfig(subject=self.avatar.subject.root, audio=self.config.audio, out=out, run=self.avatar.run,
                             runs=self.config.runs, bg=background.get(look.background, look.background),
                             light=light_spec, exposure=look.exposure, motion=self.config.motion_model,
                             **self.motion_settings)
        paths, _ = drive(config, self.device)
        return paths["video"]


def run_viewer(config: ViewConfig, device: torch.device | str = "cpu") -> None:
    """``avatar3d view``: serves until interrupted (Ctrl-C)."""
    if config.host != LOOPBACK:
        console.print(f"[yellow]warning: listening on {config.host}: the viewer has no authentication, so anyone "
                      f"who can reach this address can see and drive the avatar[/yellow]")
    check_port(config.host, config.port)
    viewer = Viewer(config, device)
    viewer.start()
    console.print(f"avatar3d view: {viewer.avatar.subject.root.name} ({viewer.timeline.label}) at "
                  f"[bold]{viewer.url}[/bold]; Ctrl-C stops")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        viewer.stop()
