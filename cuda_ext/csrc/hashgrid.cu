// CUDA launchers of the hash-grid encoding: one thread per (point, level), the bodies of
// include/hashgrid.h; the table gradient is added atomically (hashed rows collide).
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

template <int D>
__global__ void grid_forward_kernel(const float *points, int64_t count, Grid grid, float *out) {
    const int64_t i = element_index();
    if (i < count * grid.levels) grid_forward<D>(points, grid, i / grid.levels, i % grid.levels, out);
}

template <int D>
__global__ void grid_backward_kernel(const float *points, int64_t count, Grid grid, const float *grad_out,
                                     float *grad_table, float *grad_points) {
    const int64_t i = element_index();
    if (i < count * grid.levels)
        grid_backward<D>(points, grid, grad_out, i / grid.levels, i % grid.levels, grad_table, grad_points, count,
                         AtomicAdd());
}

void grid_forward_cuda(const float *points, int64_t count, int dims, const Grid &grid, float *out, void *stream) {
    if (count * grid.levels == 0) return;
    const auto s = static_cast<cudaStream_t>(stream);
    const unsigned n = blocks_for(count * grid.levels);
    if (dims == 3) grid_forward_kernel<3><<<n, THREADS, 0, s>>>(points, count, grid, out);
    else grid_forward_kernel<2><<<n, THREADS, 0, s>>>(points, count, grid, out);
}

void grid_backward_cuda(const float *points, int64_t count, int dims, const Grid &grid, const float *grad_out,
                        float *grad_table, float *grad_points, void *stream) {
    if (count * grid.levels == 0) return;
    const auto s = static_cast<cudaStream_t>(stream);
    const unsigned n = blocks_for(count * grid.levels);
    if (dims == 3) grid_backward_kernel<3><<<n, THREADS, 0, s>>>(points, count, grid, grad_out, grad_table, grad_points);
    else grid_backward_kernel<2><<<n, THREADS, 0, s>>>(points, count, grid, grad_out, grad_table, grad_points);
}

}  // namespace cuda_ext
