// Ray marching: input checks and allocation; the launchers are in march_cpu.cpp and march.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

std::vector<at::Tensor> march(const at::Tensor &origins, const at::Tensor &directions, const at::Tensor &offsets,
                              const std::vector<double> &box_min, const std::vector<double> &box_max,
                              const at::Tensor &mask, const at::Tensor &density, double near, double far,
                              double step_size, int64_t max_samples, double surface_band) {
    const auto device = origins.device();
    check(origins, "origins", at::kFloat, device);
    check(directions, "directions", at::kFloat, device);
    check(offsets, "offsets", at::kFloat, device);
    check(mask, "mask", at::kBool, device);
    check(density, "density", at::kFloat, device);
    check_shape(origins.dim() == 2 && origins.size(1) == 3 && directions.sizes() == origins.sizes(),
                "origins and directions must be (R, 3)");
    check_shape(offsets.dim() == 1 && offsets.size(0) == origins.size(0), "offsets must be (R,)");
    const int64_t G = mask.size(0);
    check_shape(mask.dim() == 3 && mask.size(1) == G && mask.size(2) == G && density.sizes() == mask.sizes(),
                "mask and density must be (G, G, G)");
    check_shape(box_min.size() == 3 && box_max.size() == 3, "the box corners must have 3 coordinates");
    check_shape(max_samples >= 0 && step_size > 0, "max_samples must be >= 0 and step_size > 0");
    March m{};
    m.mask = reinterpret_cast<const uint8_t *>(mask.data_ptr<bool>());
    m.density = density.data_ptr<float>();
    for (int a = 0; a < 3; a++) m.box_min[a] = (float)box_min[a], m.box_max[a] = (float)box_max[a];
    m.resolution = G;
    m.near = (float)near, m.far = (float)far, m.step = (float)step_size;
    m.slots = max_samples;
    m.surface_band = (float)surface_band;
    const int64_t rays = origins.size(0);
    at::Tensor t_starts = at::empty({rays, max_samples}, origins.options());
    at::Tensor t_ends = at::empty_like(t_starts);
    at::Tensor valid = at::empty({rays, max_samples}, origins.options().dtype(at::kBool));
    auto valid_out = reinterpret_cast<uint8_t *>(valid.data_ptr<bool>());
    launch(
        origins,
        [&](int threads) {
            march_cpu(origins.data_ptr<float>(), directions.data_ptr<float>(), offsets.data_ptr<float>(), rays, m,
                      t_starts.data_ptr<float>(), t_ends.data_ptr<float>(), valid_out, threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            march_cuda(origins.data_ptr<float>(), directions.data_ptr<float>(), offsets.data_ptr<float>(), rays, m,
                       t_starts.data_ptr<float>(), t_ends.data_ptr<float>(), valid_out, stream);
        }));
    return {t_starts, t_ends, valid};
}

}  // namespace cuda_ext
