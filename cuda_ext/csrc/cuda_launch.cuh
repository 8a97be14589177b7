// What the CUDA launchers share: one thread per element, in blocks of THREADS.
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

namespace cuda_ext {

constexpr int THREADS = 256;

inline unsigned blocks_for(int64_t elements) { return (unsigned)((elements + THREADS - 1) / THREADS); }

__device__ __forceinline__ int64_t element_index() { return blockIdx.x * (int64_t)blockDim.x + threadIdx.x; }

}  // namespace cuda_ext
