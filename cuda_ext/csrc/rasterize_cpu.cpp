// CPU launchers of Gaussian rasterisation, from the bodies of include/rasterize.h.
//
// The forward walks a tile at a time, Gaussians in the outer loop and the tile's pixels inner:
// each Gaussian is read once per tile and tests only the pixels of its footprint (the pixels
// outside, where its alpha is below 1/255, it would skip), a pixel that stopped is passed over,
// and the tile ends when all have. Each pixel still blends its list's entries front to back with
// `splat_blend`, so it gets the same values, bit for bit, as the one-pixel body the CUDA launcher
// runs. The backward runs the one-pixel body; its threads add into their own gradient buffers,
// summed at the end (pixels of different tiles share Gaussians). Work is dealt out in rows of
// tiles or pixels (`parallel_chunks`): the head covers some tiles only, so halves of the image
// would leave most of it to one thread.
#include <math.h>

#include <algorithm>
#include <vector>

#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

// Columns [*x0, *x1) and rows [*y0, *y1) of the pixels whose centres lie within `splat`'s
// footprint (opacity exp(-sigma) >= 1/255: sigma <= ln(255 opacity), an ellipse whose box has
// half-widths sqrt(2 ln(255 opacity) covariance_xx) and _yy), one pixel wider each way for rounding;
// all pixels when the conic is not positive definite; none when the opacity is below 1/255.
static void footprint(const Splat &splat, int64_t width, int64_t height, int64_t *x0, int64_t *x1, int64_t *y0,
                      int64_t *y1) {
    *x0 = *y0 = 0;
    *x1 = width;
    *y1 = height;
    const float determinant = splat.a * splat.c - splat.b * splat.b;
    if (!(splat.a > 0.0f && determinant > 0.0f)) return;
    const float level = logf(255.0f * splat.opacity);
    if (!(level > 0.0f)) {
        *x1 = *y1 = 0;
        return;
    }
    const float half_x = sqrtf(2.0f * level * splat.c / determinant) + 1.0f;
    const float half_y = sqrtf(2.0f * level * splat.a / determinant) + 1.0f;
    // Pixel j's centre is j + 0.5: within [m - h, m + h] for j in [ceil(m - h - 0.5), floor(m + h - 0.5)].
    *x0 = std::max<int64_t>(0, (int64_t)ceilf(splat.x - half_x - 0.5f));
    *x1 = std::min<int64_t>(width, (int64_t)floorf(splat.x + half_x - 0.5f) + 1);
    *y0 = std::max<int64_t>(0, (int64_t)ceilf(splat.y - half_y - 0.5f));
    *y1 = std::min<int64_t>(height, (int64_t)floorf(splat.y + half_y - 0.5f) + 1);
}

// One tile of the forward; `T` and `stopped` hold the tile's pixels' state (tile_size^2 each).
static void forward_tile(const Splats &s, int64_t tile, float *rgb, float *alpha, float *transmittance, int64_t *last,
                         float *T, unsigned char *stopped) {
    const int64_t left = (tile % s.tiles_x) * s.tile_size, top = (tile / s.tiles_x) * s.tile_size;
    const int64_t right = std::min(left + s.tile_size, s.width), bottom = std::min(top + s.tile_size, s.height);
    const int64_t columns = right - left, begin = s.offsets[tile], end = s.offsets[tile + 1];
    int64_t running = columns * (bottom - top);
    for (int64_t row = top; row < bottom; row++)
        for (int64_t column = left; column < right; column++) {
            const int64_t pixel = row * s.width + column, local = (row - top) * columns + column - left;
            for (int64_t c = 0; c < s.channels; c++) rgb[pixel * s.channels + c] = 0.0f;
            T[local] = 1.0f;
            stopped[local] = 0;
            last[pixel] = begin;
        }
    for (int64_t k = begin; k < end && running > 0; k++) {
        const int64_t g = s.ids[k];
        const Splat splat = splat_at(s, g);
        int64_t x0, x1, y0, y1;
        footprint(splat, s.width, s.height, &x0, &x1, &y0, &y1);
        for (int64_t row = std::max(y0, top); row < std::min(y1, bottom); row++)
            for (int64_t column = std::max(x0, left); column < std::min(x1, right); column++) {
                const int64_t pixel = row * s.width + column, local = (row - top) * columns + column - left;
                if (stopped[local]) continue;
                if (!splat_blend(s, splat, g, k, column + 0.5f, row + 0.5f, rgb + pixel * s.channels, &T[local],
                                 &last[pixel])) {
                    stopped[local] = 1;
                    running--;
                }
            }
    }
    for (int64_t row = top; row < bottom; row++)
        for (int64_t column = left; column < right; column++) {
            const int64_t pixel = row * s.width + column, local = (row - top) * columns + column - left;
            alpha[pixel] = 1.0f - T[local];
            transmittance[pixel] = T[local];
        }
}

void rasterize_forward_cpu(const Splats &splats, int64_t pixels, float *rgb, float *alpha, float *transmittance,
                           int64_t *last, int threads) {
    const int64_t tiles = splats.tiles_x * ((splats.height + splats.tile_size - 1) / splats.tile_size);
    const int64_t tile_pixels = splats.tile_size * splats.tile_size;
    parallel_chunks(tiles, threads, splats.tiles_x, [&](int, int64_t begin, int64_t end) {
        std::vector<float> T(tile_pixels);
        std::vector<unsigned char> stopped(tile_pixels);
        for (int64_t tile = begin; tile < end; tile++)
            forward_tile(splats, tile, rgb, alpha, transmittance, last, T.data(), stopped.data());
    });
}

void rasterize_backward_cpu(const Splats &splats, int64_t pixels, int64_t count, const float *transmittance,
                            const int64_t *last, const float *v_rgb, const float *v_alpha, float *v_means2d,
                            float *v_conics, float *v_colours, float *v_opacities, int threads) {
    const int64_t C = splats.channels, width = 2 + 3 + C + 1;  // per Gaussian: mean, conic, colour, opacity
    const int64_t rows = splats.width * 4;  // pixels per chunk
    const int workers = chunk_workers(pixels, threads, rows);
    std::vector<std::vector<float>> buffers(workers, std::vector<float>(count * width, 0.0f));
    parallel_chunks(pixels, threads, rows, [&](int worker, int64_t begin, int64_t end) {
        float *buffer = buffers[worker].data();
        for (int64_t p = begin; p < end; p++)
            rasterize_backward(splats, p, transmittance, last, v_rgb, v_alpha, buffer, buffer + 2 * count,
                               buffer + 5 * count, buffer + (5 + C) * count, PlainAdd());
    });
    for (const auto &buffer : buffers) {
        for (int64_t i = 0; i < 2 * count; i++) v_means2d[i] += buffer[i];
        for (int64_t i = 0; i < 3 * count; i++) v_conics[i] += buffer[2 * count + i];
        for (int64_t i = 0; i < C * count; i++) v_colours[i] += buffer[5 * count + i];
        for (int64_t i = 0; i < count; i++) v_opacities[i] += buffer[(5 + C) * count + i];
    }
}

}  // namespace cuda_ext
