/* CPU kernels of the head's hot ops: hash-grid encoding and the landmark warp.
 *
 * Plain C (no torch headers), so it builds in about a second with the system's C compiler;
 * avatar3d/kernels/build.py compiles it on first use and ctypes calls it with the tensors'
 * data pointers. Every function here has a PyTorch twin that defines what it computes:
 * hashgrid_* is avatar3d.render.encoding._encode_torch, warp_* is
 * avatar3d.render.head._warp_torch. Tests compare the two, values and gradients.
 *
 * Threads: each call splits its outer loop over `threads` POSIX threads (fork-join per
 * call, a few tens of microseconds against calls of milliseconds). Work that scatters
 * into shared rows (the table gradient) is split by level, so no two threads write the
 * same row and no atomics are needed.
 *
 * All arrays are float32, C-contiguous; sizes are int64.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#define MAX_DIMS 3
#define MAX_CORNERS 8
#define MAX_THREADS 64

/* ---- a fork-join parallel for ------------------------------------------------------------ */

typedef void (*range_fn)(const void *args, int64_t begin, int64_t end);

typedef struct {
    range_fn fn;
    const void *args;
    int64_t begin, end;
} chunk_t;

static void *run_chunk(void *p) {
    const chunk_t *c = (const chunk_t *)p;
    c->fn(c->args, c->begin, c->end);
    return NULL;
}

/* Calls fn(args, begin, end) over [0, count) split into up to `threads` contiguous ranges. */
static void parallel_for(range_fn fn, const void *args, int64_t count, int threads) {
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads > count) threads = (int)count;
    if (threads <= 1) {
        if (count > 0) fn(args, 0, count);
        return;
    }
    pthread_t ids[MAX_THREADS];
    chunk_t chunks[MAX_THREADS];
    int started[MAX_THREADS];
    for (int t = 0; t < threads; t++) {
        chunks[t] = (chunk_t){fn, args, count * t / threads, count * (t + 1) / threads};
        /* The calling thread takes the first range; a thread that fails to start runs inline. */
        started[t] = t > 0 && pthread_create(&ids[t], NULL, run_chunk, &chunks[t]) == 0;
    }
    for (int t = 0; t < threads; t++)
        if (!started[t]) run_chunk(&chunks[t]);
    for (int t = 1; t < threads; t++)
        if (started[t]) pthread_join(ids[t], NULL);
}

/* ---- hash-grid encoding ------------------------------------------------------------------ */

static const uint32_t PRIMES[MAX_DIMS] = {1u, 2654435761u, 805459861u};

typedef struct {
    const float *points;        /* (N, D) in [0, 1]^D, clamped */
    const float *table;         /* (L, T, F) */
    const int64_t *resolutions; /* (L,) cells per axis */
    const float *grad_out;      /* (N, L*F), backward only */
    float *out;                 /* forward: (N, L*F); backward: table gradient (L, T, F) or NULL */
    float *grad_points;         /* backward: (L, N, D) per-level points' gradient, or NULL */
    int64_t count, levels, rows, features;
    int dims;
} grid_args;

/* The 2^D corners of point n's cell at one level: table rows and trilinear weights, and
 * with `dweights` each weight's derivative by the point's coordinates (vertex units).
 * Always inlined with a constant `dims`, so its loops unroll. */
static inline __attribute__((always_inline)) void cell_corners(const grid_args *a, int64_t n, int64_t level,
                                                               const int dims, int64_t *rows, float *weights,
                                                               float dweights[MAX_CORNERS][MAX_DIMS]) {
    const int64_t resolution = a->resolutions[level];
    int64_t cell[MAX_DIMS];
    float frac[MAX_DIMS], side[MAX_DIMS][2];
    for (int d = 0; d < dims; d++) {
        float x = a->points[n * dims + d];
        x = x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x);
        const float pos = x * (float)resolution;
        int64_t c = (int64_t)floorf(pos);
        c = c < 0 ? 0 : (c > resolution - 1 ? resolution - 1 : c);
        cell[d] = c;
        frac[d] = pos - (float)c;
        side[d][0] = 1.0f - frac[d];
        side[d][1] = frac[d];
    }
    int64_t vertices = 1; /* (resolution + 1)^D: the dense grid's vertex count */
    for (int d = 0; d < dims; d++) vertices *= resolution + 1;
    const int dense = vertices <= a->rows;
    const int64_t base = level * a->rows;
    const uint32_t mask = (uint32_t)(a->rows - 1);
    for (int corner = 0; corner < (1 << dims); corner++) {
        int64_t row = 0, stride = 1;
        uint32_t hash = 0;
        float w = 1.0f;
        for (int d = 0; d < dims; d++) {
            const int upper = (corner >> d) & 1;
            const int64_t coord = cell[d] + upper;
            row += coord * stride;
            stride *= resolution + 1;
            hash ^= (uint32_t)coord * PRIMES[d];
            w = side[d][upper] * w; /* the reference's product order: w_z * (w_y * w_x) */
        }
        rows[corner] = base + (dense ? row : (int64_t)(hash & mask));
        weights[corner] = w;
        if (dweights) {
            for (int d = 0; d < dims; d++) {
                float g = ((corner >> d) & 1) ? 1.0f : -1.0f;
                for (int e = 0; e < dims; e++)
                    if (e != d) g *= side[e][(corner >> e) & 1];
                dweights[corner][d] = g;
            }
        }
    }
}

static inline __attribute__((always_inline)) void grid_forward_points(const grid_args *a, int64_t begin,
                                                                      int64_t end, const int dims) {
    const int64_t F = a->features, L = a->levels;
    int64_t rows[MAX_CORNERS];
    float weights[MAX_CORNERS];
    for (int64_t n = begin; n < end; n++) {
        for (int64_t l = 0; l < L; l++) {
            cell_corners(a, n, l, dims, rows, weights, NULL);
            float *out = a->out + (n * L + l) * F;
            for (int64_t f = 0; f < F; f++) out[f] = 0.0f;
            for (int c = 0; c < (1 << dims); c++) {
                const float *row = a->table + rows[c] * F;
                for (int64_t f = 0; f < F; f++) out[f] += weights[c] * row[f];
            }
        }
    }
}

static void grid_forward_range(const void *p, int64_t begin, int64_t end) {
    const grid_args *a = (const grid_args *)p;
    if (a->dims == 3) grid_forward_points(a, begin, end, 3);
    else grid_forward_points(a, begin, end, 2);
}

/* Both gradients of the levels [begin, end): a level's table rows and its slice of the
 * per-level points' gradient belong to one thread, so nothing is written twice at once. */
static inline __attribute__((always_inline)) void grid_backward_levels(const grid_args *a, int64_t begin,
                                                                       int64_t end, const int dims) {
    const int64_t F = a->features, L = a->levels, N = a->count;
    int64_t rows[MAX_CORNERS];
    float weights[MAX_CORNERS], dweights[MAX_CORNERS][MAX_DIMS];
    for (int64_t l = begin; l < end; l++) {
        const float resolution = (float)a->resolutions[l];
        for (int64_t n = 0; n < N; n++) {
            cell_corners(a, n, l, dims, rows, weights, a->grad_points ? dweights : NULL);
            const float *g = a->grad_out + (n * L + l) * F;
            float grad[MAX_DIMS] = {0.0f, 0.0f, 0.0f};
            for (int c = 0; c < (1 << dims); c++) {
                if (a->out) {
                    float *row = a->out + rows[c] * F;
                    for (int64_t f = 0; f < F; f++) row[f] += weights[c] * g[f];
                }
                if (a->grad_points) {
                    const float *row = a->table + rows[c] * F;
                    float dot = 0.0f;
                    for (int64_t f = 0; f < F; f++) dot += g[f] * row[f];
                    for (int d = 0; d < dims; d++) grad[d] += dot * dweights[c][d];
                }
            }
            if (a->grad_points)
                for (int d = 0; d < dims; d++) a->grad_points[(l * N + n) * dims + d] = grad[d] * resolution;
        }
    }
}

static void grid_backward_range(const void *p, int64_t begin, int64_t end) {
    const grid_args *a = (const grid_args *)p;
    if (a->dims == 3) grid_backward_levels(a, begin, end, 3);
    else grid_backward_levels(a, begin, end, 2);
}

/* out (N, L*F) = encoding of points (N, D). */
void hashgrid_forward(const float *points, int64_t count, int dims, const float *table, int64_t levels,
                      int64_t rows, int64_t features, const int64_t *resolutions, float *out, int threads) {
    grid_args a = {points, table, resolutions, NULL, out, NULL, count, levels, rows, features, dims};
    parallel_for(grid_forward_range, &a, count, threads);
}

/* grad_table (L, T, F), zeroed by the caller, += the table gradient; grad_points (L, N, D),
 * if not NULL, = each level's share of the points' gradient (the caller sums over levels
 * and zeroes coordinates the clamp held). Either may be NULL. */
void hashgrid_backward(const float *points, int64_t count, int dims, const float *table, int64_t levels,
                       int64_t rows, int64_t features, const int64_t *resolutions, const float *grad_out,
                       float *grad_table, float *grad_points, int threads) {
    grid_args a = {points, table, resolutions, grad_out, grad_table, grad_points, count, levels, rows, features,
                   dims};
    parallel_for(grid_backward_range, &a, levels, threads);
}

/* ---- landmark warp ----------------------------------------------------------------------- */

/* Landmarks further than this many radii from a sample have weight below exp(-18) ~ 1.5e-8:
 * left out. Such weights move a sample by at most 1.5e-8 times a landmark's displacement
 * (about 1e-10 head-space units), far below anything a pixel can show. */
#define WARP_CUTOFF_RADII 6.0f

typedef struct {
    const float *points;   /* (N, 3) */
    const int64_t *frame;  /* (N,) frame of each sample */
    const float *anchors;  /* (B, M, 3) landmark positions */
    const float *shifts;   /* (B, M, 3) their displacement from the neutral face */
    const float *grad_out; /* (N, 3), backward only */
    float *out;            /* forward: (N, 3) warped points; backward: (N, 3) points' gradient */
    int64_t landmarks;
    float radius;
} warp_args;

/* Sum of weights S, weighted shift V (3) and, with `dS`/`dV`, their derivatives by the point. */
static float warp_sums(const warp_args *a, int64_t n, float *V, float *dS, float dV[3][3]) {
    const float *x = a->points + n * 3;
    const int64_t M = a->landmarks, b = a->frame[n];
    const float inv_two_r2 = 1.0f / (2.0f * a->radius * a->radius);
    const float cutoff2 = WARP_CUTOFF_RADII * WARP_CUTOFF_RADII * a->radius * a->radius;
    float S = 0.0f;
    V[0] = V[1] = V[2] = 0.0f;
    if (dS) memset(dS, 0, 3 * sizeof(float)), memset(dV, 0, 9 * sizeof(float));
    for (int64_t k = 0; k < M; k++) {
        const float *l = a->anchors + (b * M + k) * 3, *s = a->shifts + (b * M + k) * 3;
        const float d[3] = {x[0] - l[0], x[1] - l[1], x[2] - l[2]};
        const float d2 = d[0] * d[0] + d[1] * d[1] + d[2] * d[2];
        if (d2 > cutoff2) continue;
        const float w = expf(-d2 * inv_two_r2);
        S += w;
        for (int i = 0; i < 3; i++) V[i] += w * s[i];
        if (dS) {
            for (int j = 0; j < 3; j++) {
                const float dw = -2.0f * inv_two_r2 * w * d[j]; /* d w / d x_j */
                dS[j] += dw;
                for (int i = 0; i < 3; i++) dV[i][j] += s[i] * dw;
            }
        }
    }
    return S;
}

static void warp_forward_range(const void *p, int64_t begin, int64_t end) {
    const warp_args *a = (const warp_args *)p;
    for (int64_t n = begin; n < end; n++) {
        float V[3];
        const float S = warp_sums(a, n, V, NULL, NULL);
        const float D = S > 1.0f ? S : 1.0f;
        for (int i = 0; i < 3; i++) a->out[n * 3 + i] = a->points[n * 3 + i] - V[i] / D;
    }
}

static void warp_backward_range(const void *p, int64_t begin, int64_t end) {
    const warp_args *a = (const warp_args *)p;
    for (int64_t n = begin; n < end; n++) {
        float V[3], dS[3], dV[3][3];
        const float S = warp_sums(a, n, V, dS, dV);
        const float *g = a->grad_out + n * 3;
        for (int j = 0; j < 3; j++) {
            /* d shift_i / d x_j: V/max(S, 1), the divisor's gradient only where S > 1. */
            float grad = g[j];
            for (int i = 0; i < 3; i++) {
                const float dshift = S > 1.0f ? dV[i][j] / S - V[i] * dS[j] / (S * S) : dV[i][j];
                grad -= g[i] * dshift;
            }
            a->out[n * 3 + j] = grad;
        }
    }
}

/* out (N, 3) = points warped back to the neutral face (see avatar3d.render.head). */
void warp_forward(const float *points, const int64_t *frame, int64_t count, const float *anchors,
                  const float *shifts, int64_t landmarks, float radius, float *out, int threads) {
    warp_args a = {points, frame, anchors, shifts, NULL, out, landmarks, radius};
    parallel_for(warp_forward_range, &a, count, threads);
}

/* grad_points (N, 3) = gradient of the warped points' loss by the points. */
void warp_backward(const float *points, const int64_t *frame, int64_t count, const float *anchors,
                   const float *shifts, int64_t landmarks, float radius, const float *grad_out,
                   float *grad_points, int threads) {
    warp_args a = {points, frame, anchors, shifts, grad_out, grad_points, landmarks, radius};
    parallel_for(warp_backward_range, &a, count, threads);
}
