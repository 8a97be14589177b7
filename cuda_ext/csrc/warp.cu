// CUDA launchers of the landmark warp: one thread per sample, the bodies of include/warp.h.
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

__global__ void warp_forward_kernel(const float *points, const int64_t *frame, int64_t count, Warp warp, float *out) {
    const int64_t n = element_index();
    if (n < count) warp_forward(points, frame, warp, n, out);
}

__global__ void warp_backward_kernel(const float *points, const int64_t *frame, int64_t count, Warp warp,
                                     const float *grad_out, float *grad_points) {
    const int64_t n = element_index();
    if (n < count) warp_backward(points, frame, warp, grad_out, n, grad_points);
}

void warp_forward_cuda(const float *points, const int64_t *frame, int64_t count, const Warp &warp, float *out,
                       void *stream) {
    if (count == 0) return;
    warp_forward_kernel<<<blocks_for(count), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(points, frame, count,
                                                                                               warp, out);
}

void warp_backward_cuda(const float *points, const int64_t *frame, int64_t count, const Warp &warp,
                        const float *grad_out, float *grad_points, void *stream) {
    if (count == 0) return;
    warp_backward_kernel<<<blocks_for(count), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        points, frame, count, warp, grad_out, grad_points);
}

}  // namespace cuda_ext
