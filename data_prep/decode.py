"""Step ``decode``: probe the video, choose one fixed square crop, write frames and audio.

Any container and frame rate PyAV reads; frames are resampled by timestamp to the target
fps (the frame on screen at each target time), cropped to one square that holds head and
shoulders over the whole video (the camera is static, so the background stays still) and
resized to the target resolution (upscaled when the source is small).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import av
import cv2
import numpy as np

from avatar3d.audio.io import read_audio, resample, write_wav
from avatar3d.errors import BadInputError
from avatar3d.face.detection import FaceDetector
from avatar3d.runtime import progress, threads
from avatar3d.subject import frame_name
from avatar3d.video import SquareCrop

AUDIO_RATE = 16000
DETECT_HZ = 4.0  # face-track samples per second of video when choosing the crop
DETECT_SIDE = 640  # frames are shrunk to this longest side for the face track


@dataclass
class VideoInfo:
    """What ``probe`` learns about a video file."""

    fps: float  # average source frame rate
    duration: float  # seconds, from the first frame's time to the end of the last frame
    width: int
    height: int
    has_audio: bool
    codec: str


def probe(path) -> VideoInfo:
    """Reads a video's stream headers; BadInputError when it is not a readable video."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise BadInputError(f"{path}: no video stream; give a video file (mp4, mov, mkv, avi, webm...)")
            stream = container.streams.video[0]
            fps = float(stream.average_rate or stream.guessed_rate or 0)
            if stream.duration is not None:
                duration = float(stream.duration * stream.time_base)
            else:
                duration = (container.duration or 0) / av.time_base
            return VideoInfo(fps, duration, stream.codec_context.width, stream.codec_context.height,
                             bool(container.streams.audio), stream.codec_context.name)
    except av.error.FFmpegError as error:
        raise BadInputError(f"{path}: not a readable video ({error.strerror or error}); check the file") from None


def source_frames(path) -> Iterator[tuple[float, av.VideoFrame]]:
    """Decoded frames with their presentation time in seconds from the first frame."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            stream.codec_context.thread_count = threads()
            start = None
            for frame in container.decode(stream):
                if frame.time is None:
                    continue
                start = frame.time if start is None else start
                yield frame.time - start, frame
    except av.error.FFmpegError as error:
        raise BadInputError(f"{path}: the video stream is corrupt ({error.strerror or error}); re-export it") from None


def resample_frames(frames: Iterator[tuple[float, av.VideoFrame]], fps: float) -> Iterator[tuple[int, av.VideoFrame]]:
    """Frames at exactly ``fps``: for target time k/fps, the last source frame shown by then.

    Works for any source rate, including variable ones; a source frame may repeat (upsampling)
    or be skipped (downsampling). Ends with the last source frame's display interval.
    """
    index, previous, previous_time, interval = 0, None, 0.0, 1.0 / fps
    for time, frame in frames:
        while previous is not None and index / fps < time - 1e-6:
            yield index, previous
            index += 1
        if previous is not None:
            interval = max(time - previous_time, 1e-3)
        previous, previous_time = frame, time
    while previous is not None and (index + 1) / fps <= previous_time + interval + 1e-6:
        yield index, previous  # only whole target frames: floor(duration * fps) in all
        index += 1


def _detect(detect: FaceDetector, frame: av.VideoFrame) -> np.ndarray:
    """Largest face box (x0, y0, w, h) in a frame, or an empty (0, 4) array.

    The whole frame is searched at DETECT_SIDE first (PyAV converts and shrinks in one pass);
    when that finds nothing, overlapping half-size tiles of the full-resolution frame are
    searched, so faces of ~50 px in a 1080p frame are still found (the detector sees its
    input at 192², where such a face would otherwise be a few pixels).
    """
    width, height = frame.width, frame.height
    scale = min(1.0, DETECT_SIDE / max(width, height))
    small_width, small_height = round(width * scale), round(height * scale)
    found = detect(frame.to_ndarray(format="rgb24", width=small_width, height=small_height))
    if len(found):
        sx, sy = small_width / width, small_height / height
        return found[:1, :4] / np.array([sx, sy, sx, sy], np.float32)
    image = frame.to_ndarray(format="rgb24")
    side = min(width, height) // 2
    tiles = [(x, y) for y in range(0, height - side + 1, side // 2) for x in range(0, width - side + 1, side // 2)]
    best = np.zeros((0, 5), np.float32)
    for x, y in tiles:
        tile_scale = min(1.0, DETECT_SIDE / side)
        tile = cv2.resize(image[y: y + side, x: x + side], None, fx=tile_scale, fy=tile_scale,
                          interpolation=cv2.INTER_AREA)
        boxes = detect(tile)
        if len(boxes) and (not len(best) or boxes[0, 4] > best[0, 4]):
            best = boxes[:1] / np.array([tile_scale] * 4 + [1], np.float32) + np.array([x, y, 0, 0, 0], np.float32)
    return best[:, :4]


def face_track(path, info: VideoInfo) -> tuple[np.ndarray, int, int]:
    """Largest face box at DETECT_HZ over the whole video: (N, 4) x0, y0, w, h in source pixels.

    Returns the boxes of the samples where a face was found, the number of samples searched and
    the number of samples that held more than one face.
    """
    boxes, searched, crowded, next_time = [], 0, 0, 0.0
    with FaceDetector() as detect:
        for time, frame in source_frames(path):
            if time + 1e-6 < next_time:
                continue
            next_time = time + 1.0 / DETECT_HZ
            searched += 1
            box = _detect(detect, frame)
            if len(box):
                boxes.append(box[0])
                crowded += detect.last_count > 1
    return np.array(boxes, dtype=np.float32).reshape(-1, 4), searched, crowded


def choose_crop(boxes: np.ndarray, width: int, height: int, face_fraction: float, face_height: float) -> SquareCrop:
    """One square holding every sampled face position with head-and-shoulders framing.

    The side is the median face width over ``face_fraction`` plus the face's travel; the face
    centre sits at ``face_height`` of the side from the top. Clamped to the frame where it fits.
    """
    centres = boxes[:, :2] + boxes[:, 2:] / 2
    face = float(np.median(boxes[:, 2]))
    travel = centres.max(0) - centres.min(0)
    size = int(round(face / face_fraction + travel.max()))
    size = min(size, min(width, height))
    cx = (centres[:, 0].max() + centres[:, 0].min()) / 2
    cy = (centres[:, 1].max() + centres[:, 1].min()) / 2 + (0.5 - face_height) * size
    x0 = int(round(np.clip(cx - size / 2, 0, max(0, width - size))))
    y0 = int(round(np.clip(cy - size / 2, 0, max(0, height - size))))
    return SquareCrop(x0, y0, size)


def write_frames(path, crop: SquareCrop, fps: float, resolution: int, quality: int, folder, expected: int) -> int:
    """Writes every resampled, cropped frame as JPEG; returns the count (``expected`` sizes the bar)."""
    count = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    for index, frame in progress(resample_frames(source_frames(path), fps), expected, "decode"):
        image = crop.apply(frame.to_ndarray(format="bgr24"), resolution)
        if not cv2.imwrite(str(folder / frame_name(index, ".jpg")), image, params):
            raise OSError(f"cannot write frame {index} to {folder}")
        count += 1
    return count


def write_audio(path, num_frames: int, fps: float, target) -> bool:
    """Writes the first audio track as 16 kHz mono aligned to frame 0; False if there is none."""
    with av.open(str(path)) as container:
        if not container.streams.audio:
            return False
        starts = [stream.start_time * float(stream.time_base) if stream.start_time is not None else 0.0
                  for stream in (container.streams.video[0], container.streams.audio[0])]
    samples, rate = read_audio(path)
    samples = resample(samples, rate, AUDIO_RATE)
    offset = int(round((starts[1] - starts[0]) * AUDIO_RATE))  # audio that starts late is padded
    samples = np.concatenate([np.zeros(max(offset, 0), np.float32), samples[max(-offset, 0):]])
    length = int(round(num_frames / fps * AUDIO_RATE))
    write_wav(target, np.pad(samples[:length], (0, max(0, length - len(samples)))), AUDIO_RATE)
    return True
