"""Wall-clock timing shared by the benchmark scripts."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def median_seconds(fn: Callable[[], object], repeats: int, warm_up: bool = True) -> float:
    """Median wall time of ``fn()`` in seconds over ``repeats`` calls.

    One untimed call first when ``warm_up``. CUDA work is waited for before and after each
    call, so GPU timings are not just launch times.
    """
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    if warm_up:
        fn()
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
