// CUDA launchers of Gaussian rasterisation: one thread per pixel, the bodies of
// include/rasterize.h; the backward adds into the gradients atomically.
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

__global__ void rasterize_forward_kernel(Splats splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                                         int64_t *last) {
    const int64_t p = element_index();
    if (p < pixels) rasterize_forward(splats, p, rgb, alpha, transmittance, last);
}

__global__ void rasterize_backward_kernel(Splats splats, int64_t pixels, const float *transmittance, const int64_t *last,
                                          const float *v_rgb, const float *v_alpha, float *v_means2d,
                                          float *v_conics, float *v_colours, float *v_opacities) {
    const int64_t p = element_index();
    if (p < pixels)
        rasterize_backward(splats, p, transmittance, last, v_rgb, v_alpha, v_means2d, v_conics, v_colours, v_opacities,
                           AtomicAdd());
}

void rasterize_forward_cuda(const Splats &splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                            int64_t *last, void *stream) {
    if (pixels == 0) return;
    rasterize_forward_kernel<<<blocks_for(pixels), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        splats, pixels, rgb, alpha, transmittance, last);
}

void rasterize_backward_cuda(const Splats &splats, int64_t pixels, const float *transmittance, const int64_t *last,
                             const float *v_rgb, const float *v_alpha, float *v_means2d, float *v_conics,
                             float *v_colours, float *v_opacities, void *stream) {
    if (pixels == 0) return;
    rasterize_backward_kernel<<<blocks_for(pixels), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        splats, pixels, transmittance, last, v_rgb, v_alpha, v_means2d, v_conics, v_colours, v_opacities);
}

}  // namespace cuda_ext
