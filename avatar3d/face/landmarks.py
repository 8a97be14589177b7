"""478-point face landmarks from MediaPipe Face Mesh (the model ships inside the mediapipe wheel)."""

from __future__ import annotations

import numpy as np

from avatar3d.face._mediapipe import Solution
from avatar3d.face.topology import NUM_LANDMARKS


class FaceMeshTracker(Solution):
    """MediaPipe Face Mesh with refined iris, for one face.

    In tracking mode (``static=False``) each frame starts from the previous frame's face,
    as for video; in static mode each image is detected from scratch. MediaPipe is imported
    and its model loaded on construction, never on import of this module.

    Example:
        with FaceMeshTracker() as tracker:
            points = [tracker(frame) for frame in frames]
    """

    def __init__(self, static: bool = False, min_confidence: float = 0.5):
        from mediapipe.python.solutions.face_mesh import FaceMesh

        super().__init__(lambda: FaceMesh(
            static_image_mode=static,
            max_num_faces=1,
            refine_landmarks=True,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        ))

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        """Landmarks of the face in an RGB uint8 image (H, W, 3).

        Returns:
            (478, 3) float32: x, y in pixels (centre of the top-left pixel at 0.5) and z,
            MediaPipe's relative depth in the same pixel scale (smaller is nearer the camera);
            None when no face is found.
        """
        height, width = image.shape[:2]
        result = self._process(image)
        if not result.multi_face_landmarks:
            return None
        points = result.multi_face_landmarks[0].landmark
        normalised = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)
        assert normalised.shape == (NUM_LANDMARKS, 3)
        return normalised * np.array([width, height, width], dtype=np.float32)


def detect_landmarks(image: np.ndarray) -> np.ndarray | None:
    """Landmarks of the face in one RGB uint8 image; see ``FaceMeshTracker.__call__``."""
    with FaceMeshTracker(static=True) as tracker:
        return tracker(image)
