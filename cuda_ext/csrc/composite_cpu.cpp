// CPU launchers of volume compositing: the bodies of include/composite.h, one ray per iteration.
#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

void composite_forward_cpu(const Samples &samples, int64_t rays, float *rgb, float *opacity, float *depth,
                           float *weights, float *transmittance, int threads) {
    parallel_for(rays, threads, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) composite_forward(samples, r, rgb, opacity, depth, weights, transmittance);
    });
}

void composite_backward_cpu(const Samples &samples, int64_t rays, const float *opacity, const float *depth,
                            const float *weights, const float *transmittance, const float *grad_rgb,
                            const float *grad_opacity, const float *grad_depth, const float *grad_weights,
                            const float *grad_transmittance, float *grad_densities, float *grad_colours,
                            int threads) {
    parallel_for(rays, threads, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++)
            composite_backward(samples, r, opacity, depth, weights, transmittance, grad_rgb, grad_opacity, grad_depth,
                               grad_weights, grad_transmittance, grad_densities, grad_colours);
    });
}

}  // namespace cuda_ext
