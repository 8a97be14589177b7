// CUDA launchers of volume compositing: one thread per ray, the bodies of include/composite.h.
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

__global__ void composite_forward_kernel(Samples samples, int64_t rays, float *rgb, float *opacity, float *depth,
                                         float *weights, float *transmittance) {
    const int64_t r = element_index();
    if (r < rays) composite_forward(samples, r, rgb, opacity, depth, weights, transmittance);
}

__global__ void composite_backward_kernel(Samples samples, int64_t rays, const float *opacity, const float *depth,
                                          const float *weights, const float *transmittance, const float *grad_rgb,
                                          const float *grad_opacity, const float *grad_depth,
                                          const float *grad_weights, const float *grad_transmittance,
                                          float *grad_densities, float *grad_colours) {
    const int64_t r = element_index();
    if (r < rays)
        composite_backward(samples, r, opacity, depth, weights, transmittance, grad_rgb, grad_opacity, grad_depth,
                           grad_weights, grad_transmittance, grad_densities, grad_colours);
}

void composite_forward_cuda(const Samples &samples, int64_t rays, float *rgb, float *opacity, float *depth,
                            float *weights, float *transmittance, void *stream) {
    if (rays == 0) return;
    composite_forward_kernel<<<blocks_for(rays), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        samples, rays, rgb, opacity, depth, weights, transmittance);
}

void composite_backward_cuda(const Samples &samples, int64_t rays, const float *opacity, const float *depth,
                             const float *weights, const float *transmittance, const float *grad_rgb,
                             const float *grad_opacity, const float *grad_depth, const float *grad_weights,
                             const float *grad_transmittance, float *grad_densities, float *grad_colours,
                             void *stream) {
    if (rays == 0) return;
    composite_backward_kernel<<<blocks_for(rays), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        samples, rays, opacity, depth, weights, transmittance, grad_rgb, grad_opacity, grad_depth, grad_weights,
        grad_transmittance, grad_densities, grad_colours);
}

}  // namespace cuda_ext
