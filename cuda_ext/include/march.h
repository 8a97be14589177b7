// Equal-step samples along one ray through an occupancy grid, padded layout (S slots per ray,
// the valid samples first). Twin: cuda_ext.torch_impl.march, which defines the samples, the
// validity, the surface band and the layout. Arrays float32 (mask: uint8), C-contiguous:
// origins, directions (R, 3), offsets (R,), mask and density (G, G, G) indexed [x, y, z];
// t_starts, t_ends, valid (R, S).
#pragma once

#include "common.h"

namespace cuda_ext {

struct March {
    const uint8_t *mask;   // (G, G, G) occupied cells
    const float *density;  // (G, G, G) stored densities, for the surface band
    float box_min[3], box_max[3];
    int64_t resolution;    // G
    float near, far, step;
    int64_t slots;         // S
    float surface_band;    // kept depth behind the predicted surface; < 0: keep every occupied sample
};

// Entry and exit ray parameters of the box (slab method), directions near 0 nudged to +-1e-12.
CUDA_EXT_BODY void box_interval(const float *o, const float *d, const March &m, float *t_enter, float *t_exit) {
    const float tiny = 1e-12f;
    float enter = -INFINITY, exit = INFINITY;
    for (int a = 0; a < 3; a++) {
        const float safe = fabsf(d[a]) < tiny ? (d[a] < 0.0f ? -tiny : tiny) : d[a];
        const float ta = (m.box_min[a] - o[a]) / safe, tb = (m.box_max[a] - o[a]) / safe;
        enter = fmaxf(enter, fminf(ta, tb));
        exit = fminf(exit, fmaxf(ta, tb));
    }
    *t_enter = enter;
    *t_exit = exit;
}

// Ray r's samples: sample k covers [t_lo + (k + u) step, + step] clipped to t_hi, valid when it
// starts before t_hi in an occupied cell (and, with a surface band, starts no further than the
// band behind the first point where the stored densities' optical depth exceeds ln 2). The
// valid ones fill the ray's first slots in order; the slots after them are empty intervals at
// t_hi. The walk ends at t_hi or past the band: later samples all start later.
CUDA_EXT_BODY void march_ray(const float *origins, const float *directions, const float *offsets, const March &m,
                             int64_t r, float *t_starts, float *t_ends, uint8_t *valid) {
    const float *o = origins + r * 3, *d = directions + r * 3;
    float t_enter, t_exit;
    box_interval(o, d, m, &t_enter, &t_exit);
    const float t_lo = fmaxf(t_enter, m.near);
    const float t_hi = fmaxf(fminf(t_exit, m.far), t_lo);
    const float u = offsets[r];
    const int64_t G = m.resolution, row = r * m.slots;
    float optical_depth = 0.0f, surface = INFINITY;
    int64_t used = 0;
    for (int64_t k = 0; k < m.slots; k++) {
        const float start = t_lo + ((float)k + u) * m.step;
        if (!(start < t_hi) || (m.surface_band >= 0.0f && start > surface + m.surface_band)) break;
        const float end = fminf(start + m.step, t_hi);
        const float mid = (start + end) / 2.0f;
        bool inside = true;
        int64_t cell = 0;
        for (int a = 0; a < 3; a++) {
            const float p = o[a] + d[a] * mid;
            inside = inside && p >= m.box_min[a] && p <= m.box_max[a];
            int64_t c = (int64_t)floorf((p - m.box_min[a]) / (m.box_max[a] - m.box_min[a]) * (float)G);
            c = c < 0 ? 0 : (c > G - 1 ? G - 1 : c);
            cell = cell * G + c;
        }
        if (!(inside && m.mask[cell])) continue;
        t_starts[row + used] = start;
        t_ends[row + used] = end;
        valid[row + used] = 1;
        used++;
        if (m.surface_band >= 0.0f) {
            optical_depth += m.density[cell] * (end - start);
            if (optical_depth > 0.69314718f && surface == INFINITY) surface = start;
        }
    }
    for (int64_t i = row + used; i < row + m.slots; i++) {
        t_starts[i] = t_hi;
        t_ends[i] = t_hi;
        valid[i] = 0;
    }
}

}  // namespace cuda_ext
