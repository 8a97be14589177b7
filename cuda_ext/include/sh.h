// Diffuse shading of one unit normal by order-2 RGB spherical-harmonics light, clamped at 0.
// Twin: cuda_ext.torch_impl.shade; basis order and constants as avatar3d/render/sh.py documents.
// Arrays float32 / int64, C-contiguous: normals (N, 3), lights (K, 9, 3), light_index (N,),
// out (N, 3).
#pragma once

#include "common.h"

namespace cuda_ext {

constexpr float SH_C0 = 0.282095f, SH_C1 = 0.488603f, SH_C2 = 1.092548f, SH_C3 = 0.315392f, SH_C4 = 0.546274f;

CUDA_EXT_BODY void sh_basis(const float *n, float *Y) {
    const float x = n[0], y = n[1], z = n[2];
    Y[0] = SH_C0;
    Y[1] = SH_C1 * y;
    Y[2] = SH_C1 * z;
    Y[3] = SH_C1 * x;
    Y[4] = SH_C2 * x * y;
    Y[5] = SH_C2 * y * z;
    Y[6] = SH_C3 * (3.0f * z * z - 1.0f);
    Y[7] = SH_C2 * x * z;
    Y[8] = SH_C4 * (x * x - y * y);
}

// The unclamped shading of normal i, per channel.
CUDA_EXT_BODY void sh_unclamped(const float *normals, const float *lights, const int64_t *light_index, int64_t i,
                                float *shading) {
    float Y[9];
    sh_basis(normals + i * 3, Y);
    const float *light = lights + light_index[i] * 27;
    for (int c = 0; c < 3; c++) {
        float sum = 0.0f;
        for (int k = 0; k < 9; k++) sum += Y[k] * light[k * 3 + c];
        shading[c] = sum;
    }
}

CUDA_EXT_BODY void sh_forward(const float *normals, const float *lights, const int64_t *light_index, int64_t i,
                              float *out) {
    float shading[3];
    sh_unclamped(normals, lights, light_index, i, shading);
    for (int c = 0; c < 3; c++) out[i * 3 + c] = shading[c] > 0.0f ? shading[c] : 0.0f;
}

// Gradients of normal i from grad_out (N, 3): written into grad_normals (N, 3) and `add`ed into
// grad_lights (K, 9, 3); either may be null. The clamp passes the gradient where shading >= 0.
template <class Add>
CUDA_EXT_BODY void sh_backward(const float *normals, const float *lights, const int64_t *light_index,
                               const float *grad_out, int64_t i, float *grad_normals, float *grad_lights, Add add) {
    float shading[3], g[3], Y[9];
    sh_unclamped(normals, lights, light_index, i, shading);
    for (int c = 0; c < 3; c++) g[c] = shading[c] >= 0.0f ? grad_out[i * 3 + c] : 0.0f;
    const float *n = normals + i * 3;
    const float *light = lights + light_index[i] * 27;
    if (grad_lights) {
        sh_basis(n, Y);
        float *target = grad_lights + light_index[i] * 27;
        for (int k = 0; k < 9; k++)
            for (int c = 0; c < 3; c++) add(target + k * 3 + c, Y[k] * g[c]);
    }
    if (grad_normals) {
        float d[9];  // d loss / d Y_k
        for (int k = 0; k < 9; k++) d[k] = g[0] * light[k * 3] + g[1] * light[k * 3 + 1] + g[2] * light[k * 3 + 2];
        const float x = n[0], y = n[1], z = n[2];
        grad_normals[i * 3 + 0] = SH_C1 * d[3] + SH_C2 * (y * d[4] + z * d[7]) + 2.0f * SH_C4 * x * d[8];
        grad_normals[i * 3 + 1] = SH_C1 * d[1] + SH_C2 * (x * d[4] + z * d[5]) - 2.0f * SH_C4 * y * d[8];
        grad_normals[i * 3 + 2] = SH_C1 * d[2] + SH_C2 * (y * d[5] + x * d[7]) + 6.0f * SH_C3 * z * d[6];
    }
}

}  // namespace cuda_ext
