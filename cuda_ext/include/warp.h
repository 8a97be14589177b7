// Landmark warp of one head-space sample back to the neutral face.
// Twin: cuda_ext.torch_impl.warp: x - sum_k w_k s_k / max(sum_k w_k, 1), w_k = exp(-|x - l_k|^2 / 2r^2).
// Arrays float32 / int64, C-contiguous: points (N, 3), frame (N,), anchors and shifts (B, M, 3).
#pragma once

#include "common.h"

namespace cuda_ext {

// Landmarks further than this many radii have weight below exp(-18) ~ 1.5e-8 and are left out:
// they move a sample by at most 1.5e-8 times a landmark's displacement (about 1e-10 head-space
// units), far below anything a pixel can show.
constexpr float WARP_CUTOFF_RADII = 6.0f;

struct Warp {
    const float *anchors;  // (B, M, 3) landmark positions l_k
    const float *shifts;   // (B, M, 3) their displacements s_k from the neutral face
    int64_t landmarks;     // M
    float radius;          // r, head-space units
};

// Sum of weights S and weighted shift V (3) at x for frame b; with dS (3) and dV (3x3), also
// their derivatives by x (dV[i][j] = d V_i / d x_j).
CUDA_EXT_BODY float warp_sums(const float *x, int64_t b, const Warp &w, float *V, float *dS, float (*dV)[3]) {
    const float inv_two_r2 = 1.0f / (2.0f * w.radius * w.radius);
    const float cutoff2 = WARP_CUTOFF_RADII * WARP_CUTOFF_RADII * w.radius * w.radius;
    float S = 0.0f;
    for (int i = 0; i < 3; i++) {
        V[i] = 0.0f;
        if (dS) {
            dS[i] = 0.0f;
            for (int j = 0; j < 3; j++) dV[i][j] = 0.0f;
        }
    }
    for (int64_t k = 0; k < w.landmarks; k++) {
        const float *l = w.anchors + (b * w.landmarks + k) * 3, *s = w.shifts + (b * w.landmarks + k) * 3;
        const float d[3] = {x[0] - l[0], x[1] - l[1], x[2] - l[2]};
        const float d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (d2 > cutoff2) continue;
        const float weight = expf(-d2 * inv_two_r2);
        S += weight;
        for (int i = 0; i < 3; i++) V[i] += weight * s[i];
        if (dS) {
            for (int j = 0; j < 3; j++) {
                const float dweight = -2.0f * inv_two_r2 * weight * d[j];  // d w / d x_j
                dS[j] += dweight;
                for (int i = 0; i < 3; i++) dV[i][j] += s[i] * dweight;
            }
        }
    }
    return S;
}

// out[n] = sample n warped to the neutral face.
CUDA_EXT_BODY void warp_forward(const float *points, const int64_t *frame, const Warp &w, int64_t n, float *out) {
    float V[3];
    const float *x = points + n * 3;
    const float S = warp_sums(x, frame[n], w, V, nullptr, nullptr);
    const float divisor = S > 1.0f ? S : 1.0f;
    for (int i = 0; i < 3; i++) out[n * 3 + i] = x[i] - V[i] / divisor;
}

// grad_points[n] = the gradient by sample n, from grad_out (N, 3).
CUDA_EXT_BODY void warp_backward(const float *points, const int64_t *frame, const Warp &w, const float *grad_out,
                                 int64_t n, float *grad_points) {
    float V[3], dS[3], dV[3][3];
    const float S = warp_sums(points + n * 3, frame[n], w, V, dS, dV);
    const float *g = grad_out + n * 3;
    for (int j = 0; j < 3; j++) {
        float gradient = g[j];
        for (int i = 0; i < 3; i++) {
            // d shift_i / d x_j of V / max(S, 1): the divisor has a gradient only where S > 1.
            const float dshift = S > 1.0f ? dV[i][j] / S - V[i] * dS[j] / (S * S) : dV[i][j];
            gradient -= g[i] * dshift;
        }
        grad_points[n * 3 + j] = gradient;
    }
}

}  // namespace cuda_ext
