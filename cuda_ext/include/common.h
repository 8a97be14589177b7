// What the per-element bodies share: the qualifier that compiles them for both CPU and CUDA,
// and the accumulation policies their launchers pass in.
//
// A body is a function of one element (a point, a ray, a normal). Under nvcc it is
// `__host__ __device__`, so the CUDA launcher calls it from a kernel; under the CPU compiler it
// is plain inline C++, so the CPU launcher calls it in a loop. Bodies that scatter into shared
// memory take the adder as an argument: the CUDA launcher passes an atomic one, the CPU launcher
// a plain one (it splits the work so that no two threads write the same address).
#pragma once

#include <math.h>
#include <stdint.h>

#ifdef __CUDACC__
#define CUDA_EXT_BODY __host__ __device__ __forceinline__
#else
#define CUDA_EXT_BODY inline
#endif

namespace cuda_ext {

// `*address += value` where the launcher owns the address for the whole call.
struct PlainAdd {
    CUDA_EXT_BODY void operator()(float *address, float value) const { *address += value; }
};

#ifdef __CUDACC__
// `*address += value` where other threads may add to the same address at once.
struct AtomicAdd {
    __device__ __forceinline__ void operator()(float *address, float value) const { atomicAdd(address, value); }
};
#endif

}  // namespace cuda_ext
