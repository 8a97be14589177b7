"""Person segmentation from MediaPipe Selfie Segmentation (the model ships inside the mediapipe wheel)."""

from __future__ import annotations

import numpy as np

from avatar3d.face._mediapipe import Solution


class PersonSegmenter(Solution):
    """Soft person mask per RGB frame; the model loads on construction, not on import.

    Uses the general (256x256) model: it holds head and shoulders at the distances of
    studio footage better than the landscape model.
    """

    def __init__(self):
        from mediapipe.python.solutions.selfie_segmentation import SelfieSegmentation

        super().__init__(lambda: SelfieSegmentation(model_selection=0))

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Person probability (H, W) float32 in [0, 1] for an RGB uint8 image (H, W, 3)."""
        return np.clip(self._process(image).segmentation_mask, 0.0, 1.0).astype(np.float32)
