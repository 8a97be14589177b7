"""Autograd wrappers of the CPU kernels (``cpu.c``): same arguments and results as their
PyTorch twins, which `avatar3d.render.backend.choose` picks between.

Inputs must be float32 CPU tensors (``choose`` sends nothing else here); they are made
contiguous, and the kernels run on ``torch.get_num_threads()`` threads.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from avatar3d.kernels.build import cpu_library


def _pointer(tensor: Tensor | None) -> int | None:
    return None if tensor is None else tensor.data_ptr()


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: Tensor, table: Tensor, resolutions: Tensor) -> Tensor:
        points, table = points.contiguous(), table.contiguous()
        levels, rows, features = table.shape
        out = points.new_empty(len(points), levels * features)
        cpu_library().hashgrid_forward(points.data_ptr(), len(points), points.shape[1], table.data_ptr(), levels,
                                       rows, features, resolutions.data_ptr(), out.data_ptr(),
                                       torch.get_num_threads())
        ctx.save_for_backward(points, table, resolutions)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        points, table, resolutions = ctx.saved_tensors
        levels, rows, features = table.shape
        grad_out = grad_out.contiguous()  # kept alive: the kernel reads its memory
        grad_table = torch.zeros_like(table) if ctx.needs_input_grad[1] else None
        per_level = points.new_empty(levels, *points.shape) if ctx.needs_input_grad[0] else None
        cpu_library().hashgrid_backward(points.data_ptr(), len(points), points.shape[1], table.data_ptr(), levels,
                                        rows, features, resolutions.data_ptr(), grad_out.data_ptr(),
                                        _pointer(grad_table), _pointer(per_level), torch.get_num_threads())
        grad_points = None
        if per_level is not None:  # clamped coordinates pass no gradient, as in torch.clamp's backward
            grad_points = per_level.sum(0) * ((points >= 0) & (points <= 1))
        return grad_points, grad_table, None


def encode_cpu(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """`avatar3d.render.encoding.encode` on the CPU kernel: (N, D) points, (L, T, F) table ->
    (N, L * F) features."""
    return _Encode.apply(points, table, torch.tensor(resolutions, dtype=torch.int64))


class _Warp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: Tensor, frame: Tensor, anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
        points, anchors, shifts = points.contiguous(), anchors.contiguous(), shifts.contiguous()
        out = torch.empty_like(points)
        cpu_library().warp_forward(points.data_ptr(), frame.data_ptr(), len(points), anchors.data_ptr(),
                                   shifts.data_ptr(), anchors.shape[1], radius, out.data_ptr(),
                                   torch.get_num_threads())
        ctx.save_for_backward(points, frame, anchors, shifts)
        ctx.radius = radius
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        points, frame, anchors, shifts = ctx.saved_tensors
        grad_out = grad_out.contiguous()  # kept alive: the kernel reads its memory
        grad_points = torch.empty_like(points)
        cpu_library().warp_backward(points.data_ptr(), frame.data_ptr(), len(points), anchors.data_ptr(),
                                    shifts.data_ptr(), anchors.shape[1], ctx.radius,
                                    grad_out.data_ptr(), grad_points.data_ptr(),
                                    torch.get_num_threads())
        return grad_points, None, None, None, None


def warp_cpu(points: Tensor, frame: Tensor, anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
    """`avatar3d.render.head.warp_to_neutral` on the CPU kernel. Differentiable in the
    points only (the landmarks are data).

    Args:
        points: (N, 3) head-space samples.
        frame: (N,) long, each sample's frame.
        anchors, shifts: (B, M, 3) landmark positions and their displacements.
        radius: Gaussian radius, head-space units.
    """
    return _Warp.apply(points, frame.to(torch.int64).contiguous(), anchors, shifts, float(radius))
