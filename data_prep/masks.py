"""Step ``masks``: person, head and torso per frame, and the static background plate.

One pass over the frames: MediaPipe Selfie Segmentation gives the person; the head is the
person above a neck line across the chin, perpendicular to the face's own up axis (so a
tilted head is cut correctly); torso = person - head; background = not person. Background
pixels far from any person pixel accumulate into the plate; what was never seen is inpainted.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from avatar3d.face import topology as topo
from avatar3d.face.segmentation import PersonSegmenter
from avatar3d.subject import LABEL_BACKGROUND, LABEL_HEAD, LABEL_TORSO

NECK_BELOW_CHIN = 0.08  # the neck line sits this fraction of the face height below the chin
MARGIN_AT_512 = 10  # background samples keep this many pixels (at 512²) away from the person
NEAR_MARGIN_AT_512 = 3  # ... or this many, for pixels never seen farther away


@functools.cache
def _pixel_centres(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column coordinates of pixel centres, (H, 1) and (1, W): they broadcast."""
    return (np.arange(height, dtype=np.float32)[:, None] + 0.5, np.arange(width, dtype=np.float32)[None] + 0.5)


def labels(person: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """Label map (R, R) uint8 from a person probability (R, R) and 2D landmarks (478, 2) px."""
    chin, forehead = landmarks[topo.CHIN], landmarks[topo.FOREHEAD]
    up = forehead - chin
    height = np.linalg.norm(up) + 1e-6
    up /= height
    line_point = chin - up * NECK_BELOW_CHIN * height
    rows, cols = _pixel_centres(*person.shape)
    above = (cols - line_point[0]) * up[0] + (rows - line_point[1]) * up[1] > 0
    is_person = person > 0.5
    out = np.full(person.shape, LABEL_BACKGROUND, np.uint8)
    out[is_person] = LABEL_TORSO
    out[is_person & above] = LABEL_HEAD
    return out


class BackgroundPlate:
    """Running means of background pixels over all frames, in two tiers.

    Far samples (MARGIN_AT_512 px from the person) are safe from soft mask edges and
    shadows; near samples (NEAR_MARGIN_AT_512 px) fill only the pixels never seen far.
    """

    def __init__(self, resolution: int):
        scale = resolution / 512
        self.margins = (max(1, round(MARGIN_AT_512 * scale)), max(1, round(NEAR_MARGIN_AT_512 * scale)))
        self.totals = [np.zeros((resolution, resolution, 3), np.float64) for _ in self.margins]
        self.counts = [np.zeros((resolution, resolution), np.int32) for _ in self.margins]
        self.ever_background = np.zeros((resolution, resolution), bool)

    def add(self, image: np.ndarray, label: np.ndarray) -> None:
        """Accumulates an RGB uint8 frame's background pixels by their distance from the person."""
        background = label == LABEL_BACKGROUND
        self.ever_background |= background
        distance = cv2.distanceTransform(background.astype(np.uint8), cv2.DIST_L2, 3)
        for margin, total, count in zip(self.margins, self.totals, self.counts):
            far = (distance > margin).astype(np.uint8)
            cv2.accumulate(image, total, mask=far)  # in place, several times faster than indexing
            count += far

    def finish(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The plate (R, R, 3) uint8 with holes inpainted, where it was seen (R, R) bool, and
        the coverage: the fraction of pixels that are background in some frame that were seen.

        Pixels the person never leaves cannot be seen by any method; counting them would only
        measure how much of the frame the person fills.
        """
        (far_total, near_total), (far_count, near_count) = self.totals, self.counts
        use_far = far_count > 0
        total = np.where(use_far[..., None], far_total, near_total)
        count = np.where(use_far, far_count, near_count)
        seen = count > 0
        plate = (total / np.maximum(count, 1)[..., None]).round().astype(np.uint8)
        if seen.any() and not seen.all():
            plate = cv2.inpaint(plate, (~seen).astype(np.uint8), 5, cv2.INPAINT_TELEA)
        coverage = float(seen[self.ever_background].mean()) if self.ever_background.any() else 0.0
        return plate, seen, coverage


def segment(frames, landmarks: np.ndarray, resolution: int, write_labels):
    """Runs the pass: ``write_labels(index, labels)`` per frame; returns ``BackgroundPlate.finish()``."""
    plate = BackgroundPlate(resolution)
    with PersonSegmenter() as segmenter:
        for index, image in frames:
            label = labels(segmenter(image), landmarks[index])
            write_labels(index, label)
            plate.add(image, label)
    return plate.finish()
