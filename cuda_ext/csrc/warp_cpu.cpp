// CPU launchers of the landmark warp: the bodies of include/warp.h in threaded loops.
#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

void warp_forward_cpu(const float *points, const int64_t *frame, int64_t count, const Warp &warp, float *out,
                      int threads) {
    parallel_for(count, threads, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; n++) warp_forward(points, frame, warp, n, out);
    });
}

void warp_backward_cpu(const float *points, const int64_t *frame, int64_t count, const Warp &warp,
                       const float *grad_out, float *grad_points, int threads) {
    parallel_for(count, threads, [&](int64_t begin, int64_t end) {
        for (int64_t n = begin; n < end; n++) warp_backward(points, frame, warp, grad_out, n, grad_points);
    });
}

}  // namespace cuda_ext
