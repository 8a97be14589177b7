"""Face boxes from MediaPipe Face Detection (the full-range model ships inside the mediapipe wheel)."""

from __future__ import annotations

import numpy as np

from avatar3d.face._mediapipe import Solution


class FaceDetector(Solution):
    """All faces in an RGB frame, small and far ones included (full-range model)."""

    def __init__(self, min_confidence: float = 0.5):
        from mediapipe.python.solutions.face_detection import FaceDetection

        super().__init__(lambda: FaceDetection(model_selection=1, min_detection_confidence=min_confidence))
        self.last_count = 0  # faces in the latest image

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Boxes (N, 5): x0, y0, width, height in pixels and the score, largest first."""
        height, width = image.shape[:2]
        result = self._process(image)
        boxes = [
            (box.xmin * width, box.ymin * height, box.width * width, box.height * height, found.score[0])
            for found in (result.detections or [])
            for box in [found.location_data.relative_bounding_box]
        ]
        boxes = np.array(boxes, dtype=np.float32).reshape(-1, 5)
        self.last_count = len(boxes)
        return boxes[np.argsort(-boxes[:, 2] * boxes[:, 3])]
