// SH shading: input checks and allocation; the launchers are in sh_cpu.cpp and sh.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

static void check_sh(const at::Tensor &normals, const at::Tensor &lights, const at::Tensor &light_index) {
    const auto device = normals.device();
    check(normals, "normals", at::kFloat, device);
    check(lights, "lights", at::kFloat, device);
    check(light_index, "light_index", at::kLong, device);
    check_shape(normals.dim() == 2 && normals.size(1) == 3, "normals must be (N, 3)");
    check_shape(lights.dim() == 3 && lights.size(1) == 9 && lights.size(2) == 3,
                "lights must be (K, 9, 3)");
    check_shape(light_index.dim() == 1 && light_index.size(0) == normals.size(0),
                "light_index must be (N,), one light per normal");
    // Checked on the CPU only: on CUDA it would cost a sync, and the Python wrapper makes the indices.
    check_shape(!light_index.is_cpu() || normals.size(0) == 0 || (light_index.min().item<int64_t>() >= 0 &&
                                         light_index.max().item<int64_t>() < lights.size(0)),
                "every light_index must index the lights' first axis");
}

at::Tensor sh_forward(const at::Tensor &normals, const at::Tensor &lights, const at::Tensor &light_index) {
    check_sh(normals, lights, light_index);
    at::Tensor out = at::empty_like(normals);
    const int64_t count = normals.size(0);
    launch(
        normals,
        [&](int threads) {
            sh_forward_cpu(normals.data_ptr<float>(), lights.data_ptr<float>(), light_index.data_ptr<int64_t>(), count,
                           out.data_ptr<float>(), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            sh_forward_cuda(normals.data_ptr<float>(), lights.data_ptr<float>(), light_index.data_ptr<int64_t>(),
                            count, out.data_ptr<float>(), stream);
        }));
    return out;
}

std::vector<at::Tensor> sh_backward(const at::Tensor &normals, const at::Tensor &lights,
                                    const at::Tensor &light_index, const at::Tensor &v_out, bool normals_gradient,
                                    bool lights_gradient) {
    check_sh(normals, lights, light_index);
    check(v_out, "v_out", at::kFloat, normals.device());
    check_shape(v_out.sizes() == normals.sizes(), "v_out must be (N, 3)");
    at::Tensor v_normals = normals_gradient ? at::empty_like(normals) : at::Tensor();
    at::Tensor v_lights = lights_gradient ? at::zeros_like(lights) : at::Tensor();
    float *normals_out = normals_gradient ? v_normals.data_ptr<float>() : nullptr;
    float *lights_out = lights_gradient ? v_lights.data_ptr<float>() : nullptr;
    const int64_t count = normals.size(0);
    launch(
        normals,
        [&](int threads) {
            sh_backward_cpu(normals.data_ptr<float>(), lights.data_ptr<float>(), light_index.data_ptr<int64_t>(),
                            count, lights.size(0), v_out.data_ptr<float>(), normals_out, lights_out, threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            sh_backward_cuda(normals.data_ptr<float>(), lights.data_ptr<float>(), light_index.data_ptr<int64_t>(),
                             count, v_out.data_ptr<float>(), normals_out, lights_out, stream);
        }));
    return {v_normals, v_lights};
}

}  // namespace cuda_ext
