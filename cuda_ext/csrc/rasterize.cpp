// Gaussian rasterisation: input checks and allocation; the launchers are in rasterize_cpu.cpp and
// rasterize.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

static Splats checked_splats(const at::Tensor &means2d, const at::Tensor &conics, const at::Tensor &colours,
                             const at::Tensor &opacities, const at::Tensor &offsets, const at::Tensor &ids,
                             int64_t width, int64_t height, int64_t tile_size) {
    const auto device = means2d.device();
    check(means2d, "means2d", at::kFloat, device);
    check(conics, "conics", at::kFloat, device);
    check(colours, "colours", at::kFloat, device);
    check(opacities, "opacities", at::kFloat, device);
    check(offsets, "offsets", at::kLong, device);
    check(ids, "ids", at::kLong, device);
    const int64_t count = means2d.size(0);
    check_shape(means2d.dim() == 2 && means2d.size(1) == 2, "means2d must be (N, 2)");
    check_shape(conics.dim() == 2 && conics.size(0) == count && conics.size(1) == 3, "conics must be (N, 3)");
    check_shape(colours.dim() == 2 && colours.size(0) == count, "colours must be (N, C)");
    check_shape(opacities.dim() == 1 && opacities.size(0) == count, "opacities must be (N,)");
    check_shape(width > 0 && height > 0 && tile_size > 0, "width, height and tile_size must be positive");
    const int64_t tiles_x = (width + tile_size - 1) / tile_size, tiles_y = (height + tile_size - 1) / tile_size;
    check_shape(offsets.dim() == 1 && offsets.size(0) == tiles_x * tiles_y + 1,
                "offsets must be (tiles + 1,), the tile lists' starts and then their total");
    check_shape(ids.dim() == 1, "ids must be (M,)");
    // Checked on the CPU only (on CUDA it would cost a sync; cuda_ext.torch_impl.tile_bins makes them).
    check_shape(!offsets.is_cpu() || offsets[-1].item<int64_t>() == ids.size(0),
                "offsets must end with the number of ids");
    check_shape(!ids.is_cpu() || ids.size(0) == 0 || (ids.min().item<int64_t>() >= 0 &&
                                                      ids.max().item<int64_t>() < count),
                "every id must index the Gaussians");
    return Splats{means2d.data_ptr<float>(), conics.data_ptr<float>(), colours.data_ptr<float>(),
                  opacities.data_ptr<float>(), offsets.data_ptr<int64_t>(), ids.data_ptr<int64_t>(),
                  width, height, tile_size, tiles_x, colours.size(1)};
}

std::vector<at::Tensor> rasterize_forward(const at::Tensor &means2d, const at::Tensor &conics,
                                          const at::Tensor &colours, const at::Tensor &opacities,
                                          const at::Tensor &offsets, const at::Tensor &ids, int64_t width,
                                          int64_t height, int64_t tile_size) {
    const Splats splats = checked_splats(means2d, conics, colours, opacities, offsets, ids, width, height, tile_size);
    at::Tensor rgb = at::empty({height, width, splats.channels}, means2d.options());
    at::Tensor alpha = at::empty({height, width}, means2d.options());
    at::Tensor transmittance = at::empty({height, width}, means2d.options());
    at::Tensor last = at::empty({height, width}, offsets.options());
    const int64_t pixels = width * height;
    launch(
        means2d,
        [&](int threads) {
            rasterize_forward_cpu(splats, pixels, rgb.data_ptr<float>(), alpha.data_ptr<float>(),
                                  transmittance.data_ptr<float>(), last.data_ptr<int64_t>(), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            rasterize_forward_cuda(splats, pixels, rgb.data_ptr<float>(), alpha.data_ptr<float>(),
                                   transmittance.data_ptr<float>(), last.data_ptr<int64_t>(), stream);
        }));
    return {rgb, alpha, transmittance, last};
}

std::vector<at::Tensor> rasterize_backward(const at::Tensor &means2d, const at::Tensor &conics,
                                           const at::Tensor &colours, const at::Tensor &opacities,
                                           const at::Tensor &offsets, const at::Tensor &ids, int64_t width,
                                           int64_t height, int64_t tile_size, const at::Tensor &transmittance,
                                           const at::Tensor &last, const at::Tensor &v_rgb,
                                           const at::Tensor &v_alpha) {
    const Splats splats = checked_splats(means2d, conics, colours, opacities, offsets, ids, width, height, tile_size);
    const auto device = means2d.device();
    check(transmittance, "transmittance", at::kFloat, device);
    check(last, "last", at::kLong, device);
    check(v_rgb, "v_rgb", at::kFloat, device);
    check(v_alpha, "v_alpha", at::kFloat, device);
    check_shape(transmittance.sizes() == at::IntArrayRef({height, width}) && last.sizes() == transmittance.sizes() &&
                    v_alpha.sizes() == transmittance.sizes(),
                "transmittance, last and v_alpha must be (H, W)");
    check_shape(v_rgb.sizes() == at::IntArrayRef({height, width, splats.channels}), "v_rgb must be (H, W, C)");
    const int64_t count = means2d.size(0), pixels = width * height;
    at::Tensor v_means2d = at::zeros_like(means2d), v_conics = at::zeros_like(conics);
    at::Tensor v_colours = at::zeros_like(colours), v_opacities = at::zeros_like(opacities);
    auto pointer = [](const at::Tensor &tensor) { return tensor.data_ptr<float>(); };
    launch(
        means2d,
        [&](int threads) {
            rasterize_backward_cpu(splats, pixels, count, pointer(transmittance), last.data_ptr<int64_t>(), pointer(v_rgb),
                                   pointer(v_alpha), pointer(v_means2d), pointer(v_conics), pointer(v_colours),
                                   pointer(v_opacities), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            rasterize_backward_cuda(splats, pixels, pointer(transmittance), last.data_ptr<int64_t>(), pointer(v_rgb),
                                    pointer(v_alpha), pointer(v_means2d), pointer(v_conics), pointer(v_colours),
                                    pointer(v_opacities), stream);
        }));
    return {v_means2d, v_conics, v_colours, v_opacities};
}

}  // namespace cuda_ext
