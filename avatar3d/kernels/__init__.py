"""Compiled kernels of the hot ops, each with a PyTorch twin that defines it.

- ``cpu.c``: hash-grid encoding and landmark warp for float32 CPU tensors, plain C built
  on first use (`build`), called through ctypes (`ops`).

`avatar3d.render.backend.choose` decides per call which implementation runs. Importing
this package builds nothing.
"""
