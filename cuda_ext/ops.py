"""The kernels as differentiable torch functions, with the arguments and results of their
twins in `cuda_ext.torch_impl`. Each runs the CPU or the CUDA kernel by its inputs' device;
inputs must be float32 (`avatar3d.render.backend.choose` sends nothing else here) and are made
contiguous. Gradients are named ``v_<input>``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from torch import Tensor

from cuda_ext.build import extension


class _Encode(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: Tensor, table: Tensor, resolutions: Tensor) -> Tensor:
        points, table = points.contiguous(), table.contiguous()
        ctx.save_for_backward(points, table, resolutions)
        return extension().grid_forward(points, table, resolutions)

    @staticmethod
    def backward(ctx, v_out: Tensor):
        points, table, resolutions = ctx.saved_tensors
        v_table, v_points = extension().grid_backward(points, table, resolutions, v_out.contiguous(),
                                                      ctx.needs_input_grad[1], ctx.needs_input_grad[0])
        if v_points is not None:  # clamped coordinates pass no gradient, as through torch.clamp
            v_points = v_points.sum(0) * ((points >= 0) & (points <= 1))
        return v_points, v_table, None


@lru_cache(maxsize=32)
def _resolutions(resolutions: tuple[int, ...], device: torch.device) -> Tensor:
    """The levels' resolutions as an int64 tensor on ``device``, made once (a copy to a GPU waits)."""
    return torch.tensor(resolutions, dtype=torch.int64, device=device)


def encode(points: Tensor, table: Tensor, resolutions: Sequence[int]) -> Tensor:
    """`cuda_ext.torch_impl.encode` on the kernels: (N, D) points, (L, T, F) table -> (N, L * F)."""
    return _Encode.apply(points, table, _resolutions(tuple(resolutions), points.device))


class _Warp(torch.autograd.Function):
    @staticmethod
    def forward(ctx, points: Tensor, frame: Tensor, anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
        points, anchors, shifts = points.contiguous(), anchors.contiguous(), shifts.contiguous()
        ctx.save_for_backward(points, frame, anchors, shifts)
        ctx.radius = radius
        return extension().warp_forward(points, frame, anchors, shifts, radius)

    @staticmethod
    def backward(ctx, v_out: Tensor):
        points, frame, anchors, shifts = ctx.saved_tensors
        v_points = extension().warp_backward(points, frame, anchors, shifts, ctx.radius, v_out.contiguous())
        return v_points, None, None, None, None


def warp(points: Tensor, counts: Sequence[int], anchors: Tensor, shifts: Tensor, radius: float) -> Tensor:
    """`cuda_ext.torch_impl.warp` on the kernels, differentiable in the points only (the
    landmarks are data); the kernels skip landmarks further than 6 radii (weight < 1.5e-8)."""
    frame = torch.repeat_interleave(torch.arange(len(counts), device=points.device),
                                    torch.tensor(list(counts), device=points.device), output_size=len(points))
    return _Warp.apply(points, frame, anchors, shifts, float(radius))


def march(origins: Tensor, directions: Tensor, offsets: Tensor, box_min: Tensor, box_max: Tensor, mask: Tensor,
          density: Tensor, near: float, far: float, step_size: float, max_samples: int,
          surface_band: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """`cuda_ext.torch_impl.march` on the kernels (not differentiable)."""
    t_starts, t_ends, valid = extension().march(
        origins.detach().contiguous(), directions.detach().contiguous(), offsets.contiguous(),
        box_min.tolist(), box_max.tolist(), mask.contiguous(), density.contiguous(), float(near), float(far),
        float(step_size), int(max_samples), -1.0 if surface_band is None else float(surface_band))
    return t_starts, t_ends, valid


_COMPOSITED = ("rgb", "opacity", "depth", "weights", "transmittance")


class _Composite(torch.autograd.Function):
    @staticmethod
    def forward(ctx, densities: Tensor, colours: Tensor, t_starts: Tensor, t_ends: Tensor, valid: Tensor,
                first: Tensor, stop_threshold: float):
        inputs = [x.contiguous() for x in (densities, colours, t_starts, t_ends, valid, first)]
        outputs = extension().composite_forward(*inputs, stop_threshold)
        ctx.save_for_backward(*inputs, *outputs)
        ctx.stop_threshold = stop_threshold
        return tuple(outputs)

    @staticmethod
    def backward(ctx, *v_outputs: Tensor):
        saved = ctx.saved_tensors
        inputs, outputs = saved[:6], list(saved[6:])
        v_outputs = [torch.zeros_like(out) if v is None else v.contiguous() for out, v in zip(outputs, v_outputs)]
        v_densities, v_colours = extension().composite_backward(*inputs, ctx.stop_threshold, outputs, v_outputs)
        return v_densities, v_colours, None, None, None, None, None


def composite(densities: Tensor, colours: Tensor, t_starts: Tensor, t_ends: Tensor, valid: Tensor,
              background: Tensor | None = None, stop_threshold: float = 1e-4) -> dict[str, Tensor]:
    """`cuda_ext.torch_impl.composite` on the kernels; the intervals pass no gradient."""
    first = torch.nn.functional.pad(valid.sum(1).cumsum(0), (1, 0))  # (R + 1,) packed row of each ray
    outputs = _Composite.apply(densities, colours, t_starts.detach(), t_ends.detach(), valid, first,
                               float(stop_threshold))
    out = dict(zip(_COMPOSITED, outputs))
    if background is not None:
        out["rgb"] = out["rgb"] + (1.0 - out["opacity"])[..., None] * background.to(out["rgb"])
    return out


class _Shade(torch.autograd.Function):
    @staticmethod
    def forward(ctx, normals: Tensor, lights: Tensor, light_index: Tensor) -> Tensor:
        normals, lights = normals.contiguous(), lights.contiguous()
        ctx.save_for_backward(normals, lights, light_index)
        return extension().sh_forward(normals, lights, light_index)

    @staticmethod
    def backward(ctx, v_out: Tensor):
        normals, lights, light_index = ctx.saved_tensors
        v_normals, v_lights = extension().sh_backward(normals, lights, light_index, v_out.contiguous(),
                                                      ctx.needs_input_grad[0], ctx.needs_input_grad[1])
        return v_normals, v_lights, None


def shade(normals: Tensor, coefficients: Tensor) -> Tensor:
    """`cuda_ext.torch_impl.shade` on the kernels: (..., 3) normals, a (9, 3) light or one
    (..., 9, 3) per normal -> (..., 3) shading."""
    flat = normals.reshape(-1, 3)
    if coefficients.ndim == 2:
        lights, light_index = coefficients[None], torch.zeros(len(flat), dtype=torch.int64, device=flat.device)
    else:
        lights = coefficients.expand(*normals.shape[:-1], 9, 3).reshape(-1, 9, 3)
        light_index = torch.arange(len(flat), device=flat.device)
    return _Shade.apply(flat, lights, light_index).reshape(normals.shape)


class _Rasterize(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d: Tensor, conics: Tensor, colours: Tensor, opacities: Tensor, offsets: Tensor,
                ids: Tensor, width: int, height: int, tile_size: int):
        inputs = [x.contiguous() for x in (means2d, conics, colours, opacities, offsets, ids)]
        rgb, alpha, transmittance, last = extension().rasterize_forward(*inputs, width, height, tile_size)
        ctx.save_for_backward(*inputs, transmittance, last)
        ctx.size = (width, height, tile_size)
        return rgb, alpha

    @staticmethod
    def backward(ctx, v_rgb: Tensor, v_alpha: Tensor):
        *inputs, transmittance, last = ctx.saved_tensors
        v_rgb = transmittance.new_zeros(*transmittance.shape, inputs[2].shape[1]) if v_rgb is None \
            else v_rgb.contiguous()
        v_alpha = torch.zeros_like(transmittance) if v_alpha is None else v_alpha.contiguous()
        gradients = extension().rasterize_backward(*inputs, *ctx.size, transmittance, last, v_rgb, v_alpha)
        return (*gradients, None, None, None, None, None)


def rasterize(means2d: Tensor, conics: Tensor, colours: Tensor, opacities: Tensor, offsets: Tensor, ids: Tensor,
              width: int, height: int, tile_size: int, background: Tensor | None = None) -> dict[str, Tensor]:
    """`cuda_ext.torch_impl.rasterize` on the kernels."""
    rgb, alpha = _Rasterize.apply(means2d, conics, colours, opacities, offsets, ids, int(width), int(height),
                                     int(tile_size))
    if background is not None:
        rgb = rgb + (1.0 - alpha)[..., None] * background.to(rgb)
    return {"rgb": rgb, "alpha": alpha}
