// Tile rasterisation of 2D Gaussians (3D Gaussian splatting's forward and backward), one pixel
// per call. The Gaussians covering each tile of tile_size x tile_size pixels are listed front to
// back at ids[offsets[t] .. offsets[t+1] - 1] (cuda_ext.torch_impl.tile_bins). Pixel (row i,
// column j) has its centre at (j + 0.5, i + 0.5); Gaussian g there has
//   sigma = 0.5 (a dx^2 + c dy^2) + b dx dy,  (dx, dy) = mean_g - centre,  conic_g = (a, b, c),
//   alpha = min(0.999, opacity_g exp(-sigma)),
// and is skipped where sigma < 0 or alpha < 1/255; the pixel stops before the Gaussian that would
// take its transmittance to 1e-4 or less. Twin: cuda_ext.torch_impl.rasterize (without the
// background, which the wrapper adds). Arrays float32 (offsets, ids: int64), C-contiguous:
// means2d (N, 2), conics (N, 3), colours (N, C), opacities (N,); rgb (H, W, C), alpha (H, W),
// transmittance (H, W) (1 - alpha, kept for the backward: 1 - alpha rounds away a small
// transmittance's digits), last (H, W) int64: one past the last list entry the pixel used.
#pragma once

#include "common.h"

namespace cuda_ext {

struct Splats {
    const float *means2d, *conics, *colours, *opacities;
    const int64_t *offsets, *ids;  // (tiles + 1,), (M,)
    int64_t width, height, tile_size, tiles_x, channels;
};

constexpr float SPLAT_MIN_ALPHA = 1.0f / 255.0f;
constexpr float SPLAT_MAX_ALPHA = 0.999f;
constexpr float SPLAT_MIN_TRANSMITTANCE = 1e-4f;
// Above this sigma, alpha < 1/255 for any opacity <= 1 (ln 255 = 5.5413, plus a margin for
// rounding): the exp is skipped, most pairs of a tile and a Gaussian's box are that far.
constexpr float SPLAT_FAR_SIGMA = 5.5415f;

// Gaussian g's mean, conic and opacity, read once for the pixels that test it.
struct Splat {
    float x, y, a, b, c, opacity;
};

CUDA_EXT_BODY Splat splat_at(const Splats &s, int64_t g) {
    return Splat{s.means2d[2 * g], s.means2d[2 * g + 1], s.conics[3 * g], s.conics[3 * g + 1], s.conics[3 * g + 2],
                 s.opacities[g]};
}

// A Gaussian's alpha at pixel (x, y) (centre coordinates), 0 where it is skipped; sigma and the
// unclamped opacity x exp(-sigma) are returned for the backward.
CUDA_EXT_BODY float splat_alpha(const Splat &g, float x, float y, float *dx, float *dy, float *sigma, float *raw) {
    *dx = g.x - x;
    *dy = g.y - y;
    *sigma = 0.5f * (g.a * *dx * *dx + g.c * *dy * *dy) + g.b * *dx * *dy;
    if (*sigma > SPLAT_FAR_SIGMA && g.opacity <= 1.0f) return 0.0f;
    *raw = g.opacity * expf(-*sigma);
    const float alpha = *raw < SPLAT_MAX_ALPHA ? *raw : SPLAT_MAX_ALPHA;
    return (*sigma < 0.0f || alpha < SPLAT_MIN_ALPHA) ? 0.0f : alpha;
}

// One step of a pixel's front-to-back walk: blends list entry k (Gaussian g, `splat`) into the
// pixel's colour (C,) and transmittance T, and records one past the last entry used. False when
// the pixel stops here (the entry would take T to SPLAT_MIN_TRANSMITTANCE or less; not blended).
CUDA_EXT_BODY bool splat_blend(const Splats &s, const Splat &splat, int64_t g, int64_t k, float x, float y,
                               float *colour, float *T, int64_t *used_end) {
    float dx, dy, sigma, raw;
    const float a = splat_alpha(splat, x, y, &dx, &dy, &sigma, &raw);
    if (a == 0.0f) return true;
    const float next = *T * (1.0f - a);
    if (next <= SPLAT_MIN_TRANSMITTANCE) return false;
    for (int64_t c = 0; c < s.channels; c++) colour[c] += a * *T * s.colours[g * s.channels + c];
    *T = next;
    *used_end = k + 1;
    return true;
}

CUDA_EXT_BODY void splat_range(const Splats &s, int64_t pixel, int64_t *begin, int64_t *end) {
    const int64_t row = pixel / s.width, column = pixel % s.width;
    const int64_t tile = (row / s.tile_size) * s.tiles_x + column / s.tile_size;
    *begin = s.offsets[tile];
    *end = s.offsets[tile + 1];
}

CUDA_EXT_BODY void rasterize_forward(const Splats &s, int64_t pixel, float *rgb, float *alpha, float *transmittance,
                                     int64_t *last) {
    const float x = (pixel % s.width) + 0.5f, y = (pixel / s.width) + 0.5f;
    float *colour = rgb + pixel * s.channels;
    for (int64_t c = 0; c < s.channels; c++) colour[c] = 0.0f;
    int64_t begin, end;
    splat_range(s, pixel, &begin, &end);
    float T = 1.0f;
    int64_t used_end = begin;
    for (int64_t k = begin; k < end; k++) {
        const int64_t g = s.ids[k];
        if (!splat_blend(s, splat_at(s, g), g, k, x, y, colour, &T, &used_end)) break;
    }
    alpha[pixel] = 1.0f - T;
    transmittance[pixel] = T;
    last[pixel] = used_end;
}

// Gradients by the Gaussians from the pixel's gradients (v_rgb (H, W, C), v_alpha (H, W)), added
// with `add` (an atomic add on CUDA; per-thread buffers on the CPU). Walks the pixel's list back
// to front, recovering each transmittance by division, as 3DGS's backward does:
//   d rgb / d alpha_k = c_k T_k - S_k / (1 - alpha_k),  S_k = sum_{j>k} c_j alpha_j T_j,
//   d (1 - T) / d alpha_k = T_final / (1 - alpha_k);
// a clamped alpha (0.999) passes no gradient.
template <class Add>
CUDA_EXT_BODY void rasterize_backward(const Splats &s, int64_t pixel, const float *transmittance, const int64_t *last,
                                      const float *v_rgb, const float *v_alpha, float *v_means2d, float *v_conics,
                                      float *v_colours, float *v_opacities, const Add &add) {
    const int64_t C = s.channels;
    const float x = (pixel % s.width) + 0.5f, y = (pixel / s.width) + 0.5f;
    const float *v_colour = v_rgb + pixel * C;
    int64_t begin, end;
    splat_range(s, pixel, &begin, &end);
    const float T_final = transmittance[pixel];
    float T = T_final;                    // the transmittance behind the entry being visited
    float behind_dot = 0.0f;              // v_rgb . S_k
    for (int64_t k = last[pixel] - 1; k >= begin; k--) {
        const int64_t g = s.ids[k];
        const Splat splat = splat_at(s, g);
        float dx, dy, sigma, raw;
        const float a = splat_alpha(splat, x, y, &dx, &dy, &sigma, &raw);
        if (a == 0.0f) continue;
        T = T / (1.0f - a);  // in front of it
        float colour_dot = 0.0f;
        for (int64_t c = 0; c < C; c++) {
            colour_dot += v_colour[c] * s.colours[g * C + c];
            add(v_colours + g * C + c, a * T * v_colour[c]);
        }
        const float v_a = colour_dot * T - behind_dot / (1.0f - a) + v_alpha[pixel] * T_final / (1.0f - a);
        behind_dot += colour_dot * a * T;
        if (raw >= SPLAT_MAX_ALPHA) continue;  // clamped
        const float e = expf(-sigma);
        add(v_opacities + g, e * v_a);
        const float v_sigma = -raw * v_a;
        add(v_conics + 3 * g, 0.5f * dx * dx * v_sigma);
        add(v_conics + 3 * g + 1, dx * dy * v_sigma);
        add(v_conics + 3 * g + 2, 0.5f * dy * dy * v_sigma);
        add(v_means2d + 2 * g, (splat.a * dx + splat.b * dy) * v_sigma);
        add(v_means2d + 2 * g + 1, (splat.c * dy + splat.b * dx) * v_sigma);
    }
}

}  // namespace cuda_ext
