"""``python -m cuda_ext``: builds the kernels for this machine and says which backends run."""

import logging

from cuda_ext import kernels_of
from cuda_ext.build import missing

logging.basicConfig(level=logging.INFO, format="%(message)s")
print("torch: available (PyTorch twins of every op)")
for backend in ("cpu", "cuda"):
    reason = missing(backend)
    print(f"{backend}: built ({', '.join(kernels_of(backend))})" if reason is None else f"{backend}: unavailable ({reason})")
