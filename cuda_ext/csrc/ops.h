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

// {t_starts (R, S), t_ends (R, S), valid (R, S)}; surface_band < 0 keeps every occupied sample
std::vector<at::Tensor> march(const at::Tensor &origins, const at::Tensor &directions, const at::Tensor &offsets,
                              const std::vector<double> &box_min, const std::vector<double> &box_max,
                              const at::Tensor &mask, const at::Tensor &density, double near, double far,
                              double step_size, int64_t max_samples, double surface_band);

// Packed densities (N,) and colours (N, C) of the valid slots of (R, S) rays; first (R + 1,).
// {rgb (R, C), opacity (R,), depth (R,), weights (R, S), transmittance (R, S)}
std::vector<at::Tensor> composite_forward(const at::Tensor &densities, const at::Tensor &colours,
                                          const at::Tensor &t_starts, const at::Tensor &t_ends,
                                          const at::Tensor &valid, const at::Tensor &first, double stop_threshold);
// {v_densities (N,), v_colours (N, C)}
std::vector<at::Tensor> composite_backward(const at::Tensor &densities, const at::Tensor &colours,
                                           const at::Tensor &t_starts, const at::Tensor &t_ends,
                                           const at::Tensor &valid, const at::Tensor &first, double stop_threshold,
                                           const std::vector<at::Tensor> &outputs,
                                           const std::vector<at::Tensor> &v_outputs);

at::Tensor sh_forward(const at::Tensor &normals, const at::Tensor &lights, const at::Tensor &light_index);
// {v_normals (N, 3) or undefined, v_lights (K, 9, 3) or undefined}
std::vector<at::Tensor> sh_backward(const at::Tensor &normals, const at::Tensor &lights,
                                    const at::Tensor &light_index, const at::Tensor &v_out, bool normals_gradient,
                                    bool lights_gradient);

// Gaussians' means2d (N, 2), conics (N, 3), colours (N, C), opacities (N,); tile lists offsets
// (tiles + 1,), ids (M,). {rgb (H, W, C), alpha (H, W), transmittance (H, W), last (H, W) int64}
std::vector<at::Tensor> rasterize_forward(const at::Tensor &means2d, const at::Tensor &conics,
                                          const at::Tensor &colours, const at::Tensor &opacities,
                                          const at::Tensor &offsets, const at::Tensor &ids, int64_t width,
                                          int64_t height, int64_t tile_size);
// {v_means2d, v_conics, v_colours, v_opacities}
std::vector<at::Tensor> rasterize_backward(const at::Tensor &means2d, const at::Tensor &conics,
                                           const at::Tensor &colours, const at::Tensor &opacities,
                                           const at::Tensor &offsets, const at::Tensor &ids, int64_t width,
                                           int64_t height, int64_t tile_size, const at::Tensor &transmittance,
                                           const at::Tensor &last, const at::Tensor &v_rgb,
                                           const at::Tensor &v_alpha);

}  // namespace cuda_ext
