// CPU launchers of Gaussian rasterisation: the bodies of include/rasterize.h, one pixel per
// iteration. The backward's threads each add into their own gradient buffers, summed at the end
// (pixels of different tiles share Gaussians).
#include <algorithm>
#include <vector>

#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

void rasterize_forward_cpu(const Splats &splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                           int64_t *last, int threads) {
    parallel_for(pixels, threads, [&](int64_t begin, int64_t end) {
        for (int64_t p = begin; p < end; p++) rasterize_forward(splats, p, rgb, alpha, transmittance, last);
    });
}

void rasterize_backward_cpu(const Splats &splats, int64_t pixels, int64_t count, const float *transmittance,
                            const int64_t *last, const float *v_rgb, const float *v_alpha, float *v_means2d,
                            float *v_conics, float *v_colours, float *v_opacities, int threads) {
    const int64_t C = splats.channels, width = 2 + 3 + C + 1;  // per Gaussian: mean, conic, colour, opacity
    const int parts = (int)std::max<int64_t>(1, std::min<int64_t>(threads, pixels));
    std::vector<std::vector<float>> buffers(parts, std::vector<float>(count * width, 0.0f));
    parallel_for(parts, parts, [&](int64_t first_part, int64_t end_part) {  // one part per thread
        for (int64_t part = first_part; part < end_part; part++) {
            float *buffer = buffers[part].data();
            for (int64_t p = pixels * part / parts; p < pixels * (part + 1) / parts; p++)
                rasterize_backward(splats, p, transmittance, last, v_rgb, v_alpha, buffer, buffer + 2 * count,
                                   buffer + 5 * count, buffer + (5 + C) * count, PlainAdd());
        }
    });
    for (const auto &buffer : buffers) {
        for (int64_t i = 0; i < 2 * count; i++) v_means2d[i] += buffer[i];
        for (int64_t i = 0; i < 3 * count; i++) v_conics[i] += buffer[2 * count + i];
        for (int64_t i = 0; i < C * count; i++) v_colours[i] += buffer[5 * count + i];
        for (int64_t i = 0; i < count; i++) v_opacities[i] += buffer[(5 + C) * count + i];
    }
}

}  // namespace cuda_ext
