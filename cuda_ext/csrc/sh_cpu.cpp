// CPU launchers of SH shading: the bodies of include/sh.h in threaded loops.
#include <vector>

#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

void sh_forward_cpu(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                    float *out, int threads) {
    parallel_for(count, threads, [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; i++) sh_forward(normals, lights, light_index, i, out);
    });
}

// Each thread adds its normals' light gradients into its own (K, 9, 3) copy; the copies are
// summed at the end, so the plain adder is safe.
void sh_backward_cpu(const float *normals, const float *lights, const int64_t *light_index, int64_t count,
                     int64_t num_lights, const float *grad_out, float *grad_normals, float *grad_lights,
                     int threads) {
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, count));
    const int64_t size = num_lights * 27;
    std::vector<float> partial(grad_lights ? parts * size : 0, 0.0f);
    parallel_for(parts, (int)parts, [&](int64_t first, int64_t last) {
        for (int64_t part = first; part < last; part++) {
            float *own = grad_lights ? partial.data() + part * size : nullptr;
            for (int64_t i = count * part / parts; i < count * (part + 1) / parts; i++)
                sh_backward(normals, lights, light_index, grad_out, i, grad_normals, own, PlainAdd());
        }
    });
    if (grad_lights)
        for (int64_t part = 0; part < parts; part++)
            for (int64_t k = 0; k < size; k++) grad_lights[k] += partial[part * size + k];
}

}  // namespace cuda_ext
