// CPU launchers of the hash-grid encoding: the bodies of include/hashgrid.h in threaded loops.
#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

template <int D>
static void forward(const float *points, int64_t count, const Grid &grid, float *out, int threads) {
    parallel_for(count, threads, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; n++)
            for (int64_t level = 0; level < grid.levels; level++) grid_forward<D>(points, grid, n, level, out);
    });
}

// Split by level: a level's table rows and its slice of grad_points belong to one thread, so the
// plain adder is safe.
template <int D>
static void backward(const float *points, int64_t count, const Grid &grid, const float *grad_out, float *grad_table,
                     float *grad_points, int threads) {
    parallel_for(grid.levels, threads, [&](int64_t begin, int64_t end) {
        for (int64_t level = begin; level < end; level++)
            for (int64_t n = 0; n < count; n++)
                grid_backward<D>(points, grid, grad_out, n, level, grad_table, grad_points, count, PlainAdd());
    });
}

void grid_forward_cpu(const float *points, int64_t count, int dims, const Grid &grid, float *out, int threads) {
    dims == 3 ? forward<3>(points, count, grid, out, threads) : forward<2>(points, count, grid, out, threads);
}

void grid_backward_cpu(const float *points, int64_t count, int dims, const Grid &grid, const float *grad_out,
                       float *grad_table, float *grad_points, int threads) {
    dims == 3 ? backward<3>(points, count, grid, grad_out, grad_table, grad_points, threads)
              : backward<2>(points, count, grid, grad_out, grad_table, grad_points, threads);
}

}  // namespace cuda_ext
