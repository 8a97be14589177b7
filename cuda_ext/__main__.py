"""``python -m cuda_ext``: builds the kernels for this machine and says which backends run."""

import logging

from cuda_ext import IMPLEMENTED
from cuda_ext.build import cuda_failure, extension, failure

logging.basicConfig(level=logging.INFO, format="%(message)s")
print("torch: available (PyTorch twins of every op)")
print(f"cpu: built ({', '.join(op for op, kinds in IMPLEMENTED.items() if 'cpu' in kinds)})"
      if extension() is not None else f"cpu: unavailable ({failure()})")
reason = cuda_failure()
print(f"cuda: built ({', '.join(op for op, kinds in IMPLEMENTED.items() if 'cuda' in kinds)})"
      if reason is None else f"cuda: unavailable ({reason})")
