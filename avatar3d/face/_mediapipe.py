"""Shared plumbing of the MediaPipe solutions: quiet start-up, closing."""

from __future__ import annotations

import contextlib
import os
import sys

import numpy as np


@contextlib.contextmanager
def native_stderr_silenced():
    """Sends file descriptor 2 to /dev/null for the block.

    MediaPipe's C++ side (absl logging) prints several warnings when a graph starts on its
    first frame; they are not errors and would bury the command's own output. Python-level
    exceptions still propagate normally.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)


class Solution:
    """Wraps a ``mediapipe.python.solutions`` graph: a context manager, quiet while it starts.

    Args:
        make_graph: builds the graph (called with native stderr silenced).
    """

    QUIET_CALLS = 3  # MediaPipe starts its sub-graphs (detection, then landmarks) over the first calls

    def __init__(self, make_graph):
        with native_stderr_silenced():
            self._graph = make_graph()
        self._calls = 0

    def _process(self, image: np.ndarray):
        """Runs the graph on an RGB uint8 image (H, W, 3) and returns MediaPipe's result."""
        image = np.ascontiguousarray(image)
        self._calls += 1
        if self._calls > self.QUIET_CALLS:
            return self._graph.process(image)
        with native_stderr_silenced():
            return self._graph.process(image)

    def close(self) -> None:
        self._graph.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
