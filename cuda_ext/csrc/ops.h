// The ops as torch functions (defined in the per-op `.cpp` files, bound in bindings.cpp). Each
// checks its inputs and runs the CPU or CUDA launcher by their device. Shapes: see the bodies in
// ../include and the autograd wrappers in ../ops.py.
#pragma once

#include <ATen/ATen.h>

#include <vector>

namespace cuda_ext {

at::Tensor grid_forward(const at::Tensor &points, const at::Tensor &table, const at::Tensor &resolutions);
// {v_table (L, T, F) or undefined, v_points per level (L, N, D) or undefined}
std::vector<at::Tensor> grid_backward(const at::Tensor &points, const at::Tensor &table,
                                      const at::Tensor &resolutions, const at::Tensor &v_out, bool table_gradient,
                                      bool points_gradient);

at::Tensor warp_forward(const at::Tensor &points, const at::Tensor &frame, const at::Tensor &anchors,
                        const at::Tensor &shifts, double radius);
at::Tensor warp_backward(const at::Tensor &points, const at::Tensor &frame, const at::Tensor &anchors,
                         const at::Tensor &shifts, double radius, const at::Tensor &v_out);

// {rgb (R, C), opacity (R,), depth (R,), weights (R, S), transmittance (R, S)}
std::vector<at::Tensor> composite_forward(const at::Tensor &densities, const at::Tensor &colours,
                                          const at::Tensor &t_starts, const at::Tensor &t_ends,
                                          const at::Tensor &valid, double stop_threshold);
// {v_densities (R, S), v_colours (R, S, C)}
std::vector<at::Tensor> composite_backward(const at::Tensor &densities, const at::Tensor &colours,
                                           const at::Tensor &t_starts, const at::Tensor &t_ends,
                                           const at::Tensor &valid, double stop_threshold,
                                           const std::vector<at::Tensor> &outputs,
                                           const std::vector<at::Tensor> &v_outputs);

at::Tensor sh_forward(const at::Tensor &normals, const at::Tensor &lights, const at::Tensor &light_index);
// {v_normals (N, 3) or undefined, v_lights (K, 9, 3) or undefined}
std::vector<at::Tensor> sh_backward(const at::Tensor &normals, const at::Tensor &lights,
                                    const at::Tensor &light_index, const at::Tensor &v_out, bool normals_gradient,
                                    bool lights_gradient);

}  // namespace cuda_ext
