// Emission-absorption compositing of one ray's samples. The ray has S slots (t_starts, t_ends,
// valid: (R, S)); the values of its valid slots are packed, in slot order, at rows
// first[r] .. first[r+1] - 1 of densities (N,) and colours (N, C). Twin:
// cuda_ext.torch_impl.composite (without the background, which the wrapper adds). Arrays
// float32 (valid: uint8, first: int64), C-contiguous; rgb (R, C); opacity, depth (R,);
// weights, transmittance (R, S).
#pragma once

#include "common.h"

namespace cuda_ext {

struct Samples {
    const float *densities, *colours;  // packed: (N,), (N, C)
    const float *t_starts, *t_ends;    // (R, S)
    const uint8_t *valid;              // (R, S)
    const int64_t *first;              // (R + 1,) each ray's first packed row, then N
    int64_t slots, channels;  // S, C
    float stop_threshold;     // transmittance below which samples get no weight; 0: never
};

// Smallest opacity the expected depth divides by (float32 epsilon, as the twin).
constexpr float COMPOSITE_EPS = 1.1920928955078125e-07f;

// Ray r's colour, opacity, normalised expected depth, and per-slot weights and transmittance.
// A slot that is not valid has zero optical thickness.
CUDA_EXT_BODY void composite_forward(const Samples &s, int64_t r, float *rgb, float *opacity, float *depth,
                                     float *weights, float *transmittance) {
    const int64_t S = s.slots, C = s.channels;
    float *colour = rgb + r * C;
    for (int64_t c = 0; c < C; c++) colour[c] = 0.0f;
    float before = 0.0f, total = 0.0f, weighted_t = 0.0f;
    int64_t j = s.first[r];  // packed row of the next valid slot
    for (int64_t i = r * S; i < (r + 1) * S; i++) {
        const bool valid = s.valid[i];
        const float tau = valid ? s.densities[j] * (s.t_ends[i] - s.t_starts[i]) : 0.0f;
        const float T = expf(-before);
        float w = T * (1.0f - expf(-tau));
        if (s.stop_threshold > 0.0f && !(T >= s.stop_threshold)) w = 0.0f;  // early termination
        weights[i] = w;
        transmittance[i] = T;
        if (w != 0.0f)
            for (int64_t c = 0; c < C; c++) colour[c] += w * s.colours[j * C + c];
        j += valid;
        total += w;
        weighted_t += w * 0.5f * (s.t_starts[i] + s.t_ends[i]);
        before += tau;
    }
    opacity[r] = total;
    depth[r] = weighted_t / (total > COMPOSITE_EPS ? total : COMPOSITE_EPS);
}

// Gradients by ray r's packed densities and colours from the gradients of every forward output.
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
    float behind = 0.0f;       // sum over later slots of g_i w_i + gT_i T_i
    int64_t j = s.first[r + 1];  // one past the packed row of the slot after this one
    for (int64_t i = (r + 1) * S - 1; i >= r * S; i--) {
        const float t_mid = 0.5f * (s.t_starts[i] + s.t_ends[i]);
        const float d_depth = clamped ? t_mid / COMPOSITE_EPS : (t_mid - depth[r]) / total;
        float g = grad_weights[i] + grad_opacity[r] + grad_depth[r] * d_depth;
        const float w = weights[i], T = transmittance[i];
        if (s.valid[i]) {
            j--;
            for (int64_t c = 0; c < C; c++) {
                g += grad_rgb[r * C + c] * s.colours[j * C + c];
                grad_colours[j * C + c] = w * grad_rgb[r * C + c];
            }
            const float dt = s.t_ends[i] - s.t_starts[i];
            const bool kept = !(s.stop_threshold > 0.0f) || T >= s.stop_threshold;
            const float own = kept ? g * T * expf(-s.densities[j] * dt) : 0.0f;
            grad_densities[j] = (own - behind) * dt;
        }
        behind += g * w + grad_transmittance[i] * T;
    }
}

}  // namespace cuda_ext
