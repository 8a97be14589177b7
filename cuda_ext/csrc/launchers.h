// The launchers of every op, CPU (`*_cpu.cpp`) and CUDA (`*.cu`): raw pointers and sizes, no
// torch types, so both compile without torch's headers. The per-op `.cpp` files check the
// tensors and call one of them. CUDA launchers take the stream (a cudaStream_t) as `void *`.
#pragma once

#include "../include/composite.h"
#include "../include/hashgrid.h"
#include "../include/march.h"
#include "../include/rasterize.h"
#include "../include/sh.h"
#include "../include/warp.h"

namespace cuda_ext {

void grid_forward_cpu(const float *points, int64_t count, int dims, const Grid &grid, float *out, int threads);
void grid_backward_cpu(const float *points, int64_t count, int dims, const Grid &grid, const float *grad_out,
                       float *grad_table, float *grad_points, int threads);
void warp_forward_cpu(const float *points, const int64_t *frame, int64_t count, const Warp &warp, float *out,
                      int threads);
void warp_backward_cpu(const float *points, const int64_t *frame, int64_t count, const Warp &warp,
                       const float *grad_out, float *grad_points, int threads);
void composite_forward_cpu(const Samples &samples, int64_t rays, float *rgb, float *opacity, float *depth,
                           float *weights, float *transmittance, int threads);
void composite_backward_cpu(const Samples &samples, int64_t rays, const float *opacity, const float *depth,
                            const float *weights, const float *transmittance, const float *grad_rgb,
                            const float *grad_opacity, const float *grad_depth, const float *grad_weights,
                            const float *grad_transmittance, float *grad_densities, float *grad_colours,
                            int threads);
void sh_forward_cpu(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                    float *out, int threads);
void sh_backward_cpu(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                     int64_t num_lights, const float *grad_out, float *grad_normals, float *grad_lights,
                     int threads);

void march_cpu(const float *origins, const float *directions, const float *offsets, int64_t rays, const March &march,
               float *t_starts, float *t_ends, uint8_t *valid, int threads);
void rasterize_forward_cpu(const Splats &splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                           int64_t *last, int threads);
// count: the number of Gaussians N (the gradients' rows)
void rasterize_backward_cpu(const Splats &splats, int64_t pixels, int64_t count, const float *transmittance,
                            const int64_t *last, const float *v_rgb, const float *v_alpha, float *v_means2d,
                            float *v_conics, float *v_colours, float *v_opacities, int threads);

void grid_forward_cuda(const float *points, int64_t count, int dims, const Grid &grid, float *out, void *stream);
void grid_backward_cuda(const float *points, int64_t count, int dims, const Grid &grid, const float *grad_out,
                        float *grad_table, float *grad_points, void *stream);
void warp_forward_cuda(const float *points, const int64_t *frame, int64_t count, const Warp &warp, float *out,
                       void *stream);
void warp_backward_cuda(const float *points, const int64_t *frame, int64_t count, const Warp &warp,
                        const float *grad_out, float *grad_points, void *stream);
void composite_forward_cuda(const Samples &samples, int64_t rays, float *rgb, float *opacity, float *depth,
                            float *weights, float *transmittance, void *stream);
void composite_backward_cuda(const Samples &samples, int64_t rays, const float *opacity, const float *depth,
                             const float *weights, const float *transmittance, const float *grad_rgb,
                             const float *grad_opacity, const float *grad_depth, const float *grad_weights,
                             const float *grad_transmittance, float *grad_densities, float *grad_colours,
                             void *stream);
void sh_forward_cuda(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                     float *out, void *stream);
void sh_backward_cuda(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                      const float *grad_out, float *grad_normals, float *grad_lights, void *stream);
void march_cuda(const float *origins, const float *directions, const float *offsets, int64_t rays, const March &march,
                float *t_starts, float *t_ends, uint8_t *valid, void *stream);

void rasterize_forward_cuda(const Splats &splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                            int64_t *last, void *stream);
void rasterize_backward_cuda(const Splats &splats, int64_t pixels, const float *transmittance, const int64_t *last,
                             const float *v_rgb, const float *v_alpha, float *v_means2d, float *v_conics,
                             float *v_colours, float *v_opacities, void *stream);

}  // namespace cuda_ext
