// Emission-absorption compositing of one ray's samples, padded layout: every ray has S slots
// and a validity mask. Twin: cuda_ext.torch_impl.composite (without the background, which the
// wrapper adds). Arrays float32 (valid: uint8), C-contiguous: densities, t_starts, t_ends,
// valid (R, S); colours (R, S, C); rgb (R, C); opacity, depth (R,); weights, transmittance (R, S).
#pragma once

#include "common.h"

namespace cuda_ext {

struct Samples {
    const float *densities, *colours, *t_starts, *t_ends;
    const uint8_t *valid;
    int64_t slots, channels;  // S, C
    float stop_threshold;     // transmittance below which samples get no weight; 0: never
};

// Smallest opacity the expected depth divides by (float32 epsilon, as the twin).
constexpr float COMPOSITE_EPS = 1.1920928955078125e-07f;

// Ray r's colour, opacity, normalised expected depth, and per-slot weights and transmittance.
// A slot that is not valid has zero optical thickness; its colour is never read.
CUDA_EXT_BODY void composite_forward(const Samples &s, int64_t r, float *rgb, float *opacity, float *depth,
                                     float *weights, float *transmittance) {
    const int64_t S = s.slots, C = s.channels;
    float *colour = rgb + r * C;
    for (int64_t c = 0; c < C; c++) colour[c] = 0.0f;
    float before = 0.0f, total = 0.0f, weighted_t = 0.0f;
    for (int64_t i = r * S; i < (r + 1) * S; i++) {
        const float tau = s.valid[i] ? s.densities[i] * (s.t_ends[i] - s.t_starts[i]) : 0.0f;
        const float T = expf(-before);
        float w = T * (1.0f - expf(-tau));
        if (s.stop_threshold > 0.0f && !(T >= s.stop_threshold)) w = 0.0f;  // early termination
        weights[i] = w;
        transmittance[i] = T;
        if (w != 0.0f)
            for (int64_t c = 0; c < C; c++) colour[c] += w * s.colours[i * C + c];
        total += w;
        weighted_t += w * 0.5f * (s.t_starts[i] + s.t_ends[i]);
        before += tau;
    }
    opacity[r] = total;
    depth[r] = weighted_t / (total > COMPOSITE_EPS ? total : COMPOSITE_EPS);
}

// Gradients by ray r's densities and colours from the gradients of every forward output.
// With g_i the loss's total derivative by weight i, and w_i = m_i T_i (1 - e^-tau_i) (m_i the
// early-termination mask), d loss / d tau_k = g_k m_k T_k e^-tau_k - sum_{i>k} (g_i w_i + gT_i T_i),
// accumulated from the back of the ray.
CUDA_EXT_BODY void composite_backward(const Samples &s, int64_t r, const float *opacity, const float *depth,
                                      const float *weights, const float *transmittance, const float *grad_rgb,
                                      const float *grad_opacity, const float *grad_depth, const float *grad_weights,
                                      const float *grad_transmittance, float *grad_densities, float *grad_colours) {
    const int64_t S = s.slots, C = s.channels;
    const float total = opacity[r];
    const bool clamped = !(total >= COMPOSITE_EPS);  // the depth's divisor is the constant eps
    float behind = 0.0f;  // sum over later slots of g_i w_i + gT_i T_i
    for (int64_t i = (r + 1) * S - 1; i >= r * S; i--) {
        const float t_mid = 0.5f * (s.t_starts[i] + s.t_ends[i]);
        const float d_depth = clamped ? t_mid / COMPOSITE_EPS : (t_mid - depth[r]) / total;
        float g = grad_weights[i] + grad_opacity[r] + grad_depth[r] * d_depth;
        const float w = weights[i], T = transmittance[i];
        if (s.valid[i]) {
            for (int64_t c = 0; c < C; c++) {
                g += grad_rgb[r * C + c] * s.colours[i * C + c];
                grad_colours[i * C + c] = w * grad_rgb[r * C + c];
            }
            const float dt = s.t_ends[i] - s.t_starts[i];
            const bool kept = !(s.stop_threshold > 0.0f) || T >= s.stop_threshold;
            const float own = kept ? g * T * expf(-s.densities[i] * dt) : 0.0f;
            grad_densities[i] = (own - behind) * dt;
        } else {
            for (int64_t c = 0; c < C; c++) grad_colours[i * C + c] = 0.0f;
            grad_densities[i] = 0.0f;
        }
        behind += g * w + grad_transmittance[i] * T;
    }
}

}  // namespace cuda_ext
