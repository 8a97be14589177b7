// CUDA launcher of ray marching: one thread per ray, the body of include/march.h.
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

__global__ void march_kernel(const float *origins, const float *directions, const float *offsets, int64_t rays,
                             March march, float *t_starts, float *t_ends, uint8_t *valid) {
    const int64_t r = element_index();
    if (r < rays) march_ray(origins, directions, offsets, march, r, t_starts, t_ends, valid);
}

void march_cuda(const float *origins, const float *directions, const float *offsets, int64_t rays, const March &march,
                float *t_starts, float *t_ends, uint8_t *valid, void *stream) {
    if (rays == 0) return;
    march_kernel<<<blocks_for(rays), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        origins, directions, offsets, rays, march, t_starts, t_ends, valid);
}

}  // namespace cuda_ext
