"""Video files through PyAV: streaming H.264 + AAC writing, and frame and audio reading."""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from avatar3d.errors import BadInputError
from avatar3d.files import ClosedOnSuccess, partial_path

_AAC_FRAME = 1024  # samples per AAC frame


class VideoWriter(ClosedOnSuccess):
    """Streams RGB frames, with an optional mono audio track, into an H.264 mp4 file, or
    RGBA frames into a ProRes 4444 .mov (``alpha=True``).

    The file is written under a hidden temporary name and renamed on ``close``, so an
    interrupted run never leaves a truncated video under the final name. Audio is
    interleaved as the frames arrive: memory does not grow with the clip's length.

    Example:
        with VideoWriter(path, fps=25, size=256, audio=samples, sample_rate=22050) as video:
            for frame in frames:
                video.write(frame)
    """

    def __init__(self, path: Path, fps: float, size: int, audio: np.ndarray | None = None,
                 sample_rate: int = 0, crf: int = 18, alpha: bool = False):
        """Args: path: final .mp4 (or .mov with ``alpha``) path; fps: frames per second
        (a float such as 29.97002997 is kept as the exact 30000/1001); size: square frame side in pixels (even); audio: (N,)
        float samples in [-1, 1]; sample_rate: Hz; crf: x264 quality (lower is better, 18 is
        visually lossless); alpha: frames are RGBA (straight alpha), written as ProRes 4444."""
        self.path = Path(path)
        self._partial = partial_path(self.path)
        self._fps = Fraction(fps).limit_denominator(1001)
        self._container = av.open(str(self._partial), "w", format="mov" if alpha else "mp4")
        self._video = self._container.add_stream("prores_ks" if alpha else "libx264", rate=self._fps)
        self._video.width = self._video.height = size
        if alpha:
            self._video.pix_fmt = "yuva444p10le"
            self._video.options = {"profile": "4444"}
        else:
            self._video.pix_fmt = "yuv420p"
            self._video.options = {"crf": str(crf), "preset": "veryfast"}
        self._frame_format = "rgba" if alpha else "rgb24"
        self._frames = 0
        self._audio_samples = None if audio is None else np.asarray(audio, dtype=np.float32)
        self._audio_done = 0
        if self._audio_samples is not None:
            self._audio = self._container.add_stream("aac", rate=sample_rate)
            self._audio.layout = "mono"
            self._audio.time_base = Fraction(1, sample_rate)
            self._sample_rate = sample_rate

    def write(self, frame: np.ndarray) -> None:
        """Appends one (size, size, 3) uint8 RGB frame ((size, size, 4) RGBA with ``alpha``),
        then the audio up to its end time."""
        video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format=self._frame_format)
        video_frame.pts = self._frames
        self._container.mux(self._video.encode(video_frame))
        self._frames += 1
        if self._audio_samples is not None:
            self._write_audio(int(round(self._frames / self._fps * self._sample_rate)))

    def _write_audio(self, until: int) -> None:
        samples = self._audio_samples
        until = min(until, len(samples))
        while self._audio_done + _AAC_FRAME <= until or (until == len(samples) and self._audio_done < until):
            chunk = samples[self._audio_done: self._audio_done + _AAC_FRAME]
            audio_frame = av.AudioFrame.from_ndarray(chunk[None], format="fltp", layout="mono")
            audio_frame.sample_rate = self._sample_rate
            audio_frame.pts = self._audio_done
            self._container.mux(self._audio.encode(audio_frame))
            self._audio_done += len(chunk)

    def close(self) -> None:
        """Flushes both encoders and moves the finished file to its final name."""
        self._container.mux(self._video.encode(None))
        if self._audio_samples is not None:
            self._write_audio(len(self._audio_samples))
            self._container.mux(self._audio.encode(None))
        self._container.close()
        os.replace(self._partial, self.path)

    def abort(self) -> None:
        """Drops the unfinished file."""
        self._container.close()
        self._partial.unlink(missing_ok=True)


def read_frames(path: Path) -> Iterator[np.ndarray]:
    """Decodes the first video stream as (H, W, 3) uint8 RGB frames, in display order."""
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            yield frame.to_ndarray(format="rgb24")


@dataclass
class SquareCrop:
    """A square region of a video's frames, pixels (a subject's framing: ``subject.json``'s crop)."""

    x0: int
    y0: int
    size: int

    def apply(self, image: np.ndarray, resolution: int) -> np.ndarray:
        """Cuts the square (padding with edge pixels where it leaves the frame) and resizes it."""
        import cv2

        height, width = image.shape[:2]
        pad = max(0, -self.x0, -self.y0, self.x0 + self.size - width, self.y0 + self.size - height)
        if pad:
            image = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        square = image[self.y0 + pad: self.y0 + pad + self.size, self.x0 + pad: self.x0 + pad + self.size]
        shrink = self.size > resolution
        return cv2.resize(square, (resolution, resolution), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)
