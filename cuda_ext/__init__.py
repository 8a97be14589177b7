"""The hot ops, each with a kernel for CPU and CUDA and a PyTorch twin.

- ``include/``: one per-element body per op, ``__host__ __device__`` under nvcc and plain
  inline C++ under the CPU compiler.
- ``csrc/``: per op a CPU launcher (``*_cpu.cpp``, threads) and a CUDA launcher (``*.cu``),
  neither including torch's headers (the ``.cu`` files take the stream as an argument, so
  ``nvcc -c`` checks them anywhere); a ``.cpp`` of input checks and allocation; the bindings
  (``bindings.cpp``).
- `build`: the lazy build (torch cpp_extension + ninja) and what runs here.
- `ops`: the autograd wrappers; `torch_impl`: the twins, with the same signatures.

Which backend runs an op is `avatar3d.render.backend.choose`'s decision, from `IMPLEMENTED`.
Importing this package builds nothing; ``python -m cuda_ext`` builds and reports.
"""

IMPLEMENTED = {
    "encode": ("cpu", "cuda"),
    "warp": ("cpu", "cuda"),
    "composite": ("cpu", "cuda"),
    "shade": ("cpu", "cuda"),
    "march": ("cpu", "cuda"),
    "rasterize": ("cpu", "cuda"),
}
"""The ops and the kernel backends that implement each (the twin, ``torch``, always does)."""


def kernels_of(backend: str) -> list[str]:
    """The ops that have a kernel on ``backend`` (``cpu`` or ``cuda``)."""
    return [op for op, backends in IMPLEMENTED.items() if backend in backends]
