// Multi-resolution hash-grid encoding (Instant-NGP) of one point at one level.
// Twin: cuda_ext.torch_impl.encode, which defines the layout (dense coarse levels, x fastest;
// hashed fine levels, (x*1) xor (y*2654435761) xor (z*805459861) mod T) and the clamping.
// All arrays float32 / int64, C-contiguous: points (N, D), table (L, T, F), out (N, L*F).
#pragma once

#include "common.h"

namespace cuda_ext {

struct Grid {
    const float *table;          // (L, T, F)
    const int64_t *resolutions;  // (L,) cells per axis
    int64_t levels, rows, features;
};

// The 2^D corners of the point's cell at `level`: table rows (into the flattened (L*T, F)
// table) and their D-linear weights; with `dweights`, each weight's derivative by the point's
// coordinates in vertex units. Weights multiply in the twin's order, w_z * (w_y * w_x).
template <int D>
CUDA_EXT_BODY void grid_corners(const float *point, const Grid &g, int64_t level, int64_t *rows, float *weights,
                                float (*dweights)[D]) {
    const int64_t resolution = g.resolutions[level];
    int64_t cell[D];
    float side[D][2];
    for (int d = 0; d < D; d++) {
        float x = point[d];
        x = x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
        const float position = x * (float)resolution;
        int64_t c = (int64_t)floorf(position);
        c = c < 0 ? 0 : (c > resolution - 1 ? resolution - 1 : c);  // a point at 1 is in the last cell
        cell[d] = c;
        side[d][1] = position - (float)c;
        side[d][0] = 1.0f - side[d][1];
    }
    int64_t vertices = 1;  // (resolution + 1)^D, the dense grid's size
    for (int d = 0; d < D; d++) vertices *= resolution + 1;
    const bool dense = vertices <= g.rows;
    const int64_t base = level * g.rows;
    const uint32_t mask = (uint32_t)(g.rows - 1);
    for (int corner = 0; corner < (1 << D); corner++) {
        int64_t row = 0, stride = 1;
        uint32_t hash = 0;
        float w = 1.0f;
        for (int d = 0; d < D; d++) {
            const int upper = (corner >> d) & 1;
            const int64_t coordinate = cell[d] + upper;
            row += coordinate * stride;
            stride *= resolution + 1;
            hash ^= (uint32_t)coordinate * (d == 0 ? 1u : (d == 1 ? 2654435761u : 805459861u));
            w = side[d][upper] * w;
        }
        rows[corner] = base + (dense ? row : (int64_t)(hash & mask));
        weights[corner] = w;
        if (dweights) {
            for (int d = 0; d < D; d++) {
                float slope = ((corner >> d) & 1) ? 1.0f : -1.0f;
                for (int e = 0; e < D; e++)
                    if (e != d) slope *= side[e][(corner >> e) & 1];
                dweights[corner][d] = slope;
            }
        }
    }
}

// out[n, level*F : level*F + F] = the encoding of point n at `level`.
template <int D>
CUDA_EXT_BODY void grid_forward(const float *points, const Grid &g, int64_t n, int64_t level, float *out) {
    int64_t rows[1 << D];
    float weights[1 << D];
    grid_corners<D>(points + n * D, g, level, rows, weights, nullptr);
    const int64_t F = g.features;
    float *target = out + (n * g.levels + level) * F;
    for (int64_t f = 0; f < F; f++) target[f] = 0.0f;
    for (int c = 0; c < (1 << D); c++) {
        const float *row = g.table + rows[c] * F;
        for (int64_t f = 0; f < F; f++) target[f] += weights[c] * row[f];
    }
}

// Gradients of point n at `level` from grad_out (N, L*F): `add`s weight x grad_out into the
// table gradient (L, T, F) if not null, and writes this level's share of the point's gradient
// into grad_points (L, N, D) if not null (the caller sums over levels and zeroes coordinates the
// clamp held).
template <int D, class Add>
CUDA_EXT_BODY void grid_backward(const float *points, const Grid &g, const float *grad_out, int64_t n, int64_t level,
                                 float *grad_table, float *grad_points, int64_t count, Add add) {
    int64_t rows[1 << D];
    float weights[1 << D], dweights[1 << D][D];
    grid_corners<D>(points + n * D, g, level, rows, weights, grad_points ? dweights : nullptr);
    const int64_t F = g.features;
    const float *gradient = grad_out + (n * g.levels + level) * F;
    float slope[D];
    for (int d = 0; d < D; d++) slope[d] = 0.0f;
    for (int c = 0; c < (1 << D); c++) {
        if (grad_table)
            for (int64_t f = 0; f < F; f++) add(grad_table + rows[c] * F + f, weights[c] * gradient[f]);
        if (grad_points) {
            const float *row = g.table + rows[c] * F;
            float dot = 0.0f;
            for (int64_t f = 0; f < F; f++) dot += gradient[f] * row[f];
            for (int d = 0; d < D; d++) slope[d] += dot * dweights[c][d];
        }
    }
    if (grad_points) {
        const float resolution = (float)g.resolutions[level];
        for (int d = 0; d < D; d++) grad_points[(level * count + n) * D + d] = slope[d] * resolution;
    }
}

}  // namespace cuda_ext
