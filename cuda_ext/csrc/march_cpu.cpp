// CPU launcher of ray marching: the body of include/march.h, one ray per iteration.
#include "launchers.h"
#include "parallel.h"

namespace cuda_ext {

void march_cpu(const float *origins, const float *directions, const float *offsets, int64_t rays, const March &march,
               float *t_starts, float *t_ends, uint8_t *valid, int threads) {
    parallel_for(rays, threads, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; r++) march_ray(origins, directions, offsets, march, r, t_starts, t_ends, valid);
    });
}

}  // namespace cuda_ext
