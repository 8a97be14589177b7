// CUDA launchers of SH shading: one thread per normal, the bodies of include/sh.h; the light
// gradient is added atomically (many normals share a light).
#include "cuda_launch.cuh"
#include "launchers.h"

namespace cuda_ext {

__global__ void sh_forward_kernel(const float *normals, const float *lights, const int64_t *light_index,
                                  int64_t count, float *out) {
    const int64_t i = element_index();
    if (i < count) sh_forward(normals, lights, light_index, i, out);
}

__global__ void sh_backward_kernel(const float *normals, const float *lights, const int64_t *light_index,
                                   int64_t count, const float *grad_out, float *grad_normals, float *grad_lights) {
    const int64_t i = element_index();
    if (i < count) sh_backward(normals, lights, light_index, grad_out, i, grad_normals, grad_lights, AtomicAdd());
}

void sh_forward_cuda(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                     float *out, void *stream) {
    if (count == 0) return;
    sh_forward_kernel<<<blocks_for(count), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(normals, lights,
                                                                                             light_index, count, out);
}

void sh_backward_cuda(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                      const float *grad_out, float *grad_normals, float *grad_lights, void *stream) {
    if (count == 0) return;
    sh_backward_kernel<<<blocks_for(count), THREADS, 0, static_cast<cudaStream_t>(stream)>>>(
        normals, lights, light_index, count, grad_out, grad_normals, grad_lights);
}

}  // namespace cuda_ext
