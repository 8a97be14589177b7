// Volume compositing (padded layout): input checks and allocation; the launchers are in
// composite_cpu.cpp and composite.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

static Samples checked_samples(const at::Tensor &densities, const at::Tensor &colours, const at::Tensor &t_starts,
                               const at::Tensor &t_ends, const at::Tensor &valid, double stop_threshold) {
    const auto device = densities.device();
    check(densities, "densities", at::kFloat, device);
    check(colours, "colours", at::kFloat, device);
    check(t_starts, "t_starts", at::kFloat, device);
    check(t_ends, "t_ends", at::kFloat, device);
    check(valid, "valid", at::kBool, device);
    check_shape(densities.dim() == 2, "densities must be (R, S)");
    check_shape(t_starts.sizes() == densities.sizes() && t_ends.sizes() == densities.sizes() &&
                    valid.sizes() == densities.sizes(),
                "t_starts, t_ends and valid must be (R, S), as densities");
    check_shape(colours.dim() == 3 && colours.size(0) == densities.size(0) && colours.size(1) == densities.size(1),
                "colours must be (R, S, C)");
    return Samples{densities.data_ptr<float>(),
                   colours.data_ptr<float>(),
                   t_starts.data_ptr<float>(),
                   t_ends.data_ptr<float>(),
                   reinterpret_cast<const uint8_t *>(valid.data_ptr<bool>()),
                   densities.size(1),
                   colours.size(2),
                   (float)stop_threshold};
}

std::vector<at::Tensor> composite_forward(const at::Tensor &densities, const at::Tensor &colours,
                                          const at::Tensor &t_starts, const at::Tensor &t_ends,
                                          const at::Tensor &valid, double stop_threshold) {
    const Samples samples = checked_samples(densities, colours, t_starts, t_ends, valid, stop_threshold);
    const int64_t rays = densities.size(0);
    at::Tensor rgb = at::empty({rays, samples.channels}, densities.options());
    at::Tensor opacity = at::empty({rays}, densities.options()), depth = at::empty({rays}, densities.options());
    at::Tensor weights = at::empty_like(densities), transmittance = at::empty_like(densities);
    launch(
        densities,
        [&](int threads) {
            composite_forward_cpu(samples, rays, rgb.data_ptr<float>(), opacity.data_ptr<float>(),
                                  depth.data_ptr<float>(), weights.data_ptr<float>(),
                                  transmittance.data_ptr<float>(), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            composite_forward_cuda(samples, rays, rgb.data_ptr<float>(), opacity.data_ptr<float>(),
                                   depth.data_ptr<float>(), weights.data_ptr<float>(),
                                   transmittance.data_ptr<float>(), stream);
        }));
    return {rgb, opacity, depth, weights, transmittance};
}

std::vector<at::Tensor> composite_backward(const at::Tensor &densities, const at::Tensor &colours,
                                           const at::Tensor &t_starts, const at::Tensor &t_ends,
                                           const at::Tensor &valid, double stop_threshold,
                                           const std::vector<at::Tensor> &outputs,
                                           const std::vector<at::Tensor> &v_outputs) {
    const Samples samples = checked_samples(densities, colours, t_starts, t_ends, valid, stop_threshold);
    check_shape(outputs.size() == 5 && v_outputs.size() == 5,
                "composite_backward takes the five outputs and their five gradients");
    const char *names[5] = {"rgb", "opacity", "depth", "weights", "transmittance"};
    for (int k = 0; k < 5; k++) {
        check(outputs[k], names[k], at::kFloat, densities.device());
        check(v_outputs[k], names[k], at::kFloat, densities.device());
        check_shape(v_outputs[k].sizes() == outputs[k].sizes(), "each gradient must have its output's shape");
    }
    const int64_t rays = densities.size(0);
    at::Tensor v_densities = at::empty_like(densities), v_colours = at::empty_like(colours);
    auto pointer = [](const at::Tensor &tensor) { return tensor.data_ptr<float>(); };
    launch(
        densities,
        [&](int threads) {
            composite_backward_cpu(samples, rays, pointer(outputs[1]), pointer(outputs[2]), pointer(outputs[3]),
                                   pointer(outputs[4]), pointer(v_outputs[0]), pointer(v_outputs[1]),
                                   pointer(v_outputs[2]), pointer(v_outputs[3]), pointer(v_outputs[4]),
                                   pointer(v_densities), pointer(v_colours), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            composite_backward_cuda(samples, rays, pointer(outputs[1]), pointer(outputs[2]), pointer(outputs[3]),
                                    pointer(outputs[4]), pointer(v_outputs[0]), pointer(v_outputs[1]),
                                    pointer(v_outputs[2]), pointer(v_outputs[3]), pointer(v_outputs[4]),
                                    pointer(v_densities), pointer(v_colours), stream);
        }));
    return {v_densities, v_colours};
}

}  // namespace cuda_ext
