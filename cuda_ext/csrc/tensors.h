// What the per-op `.cpp` files share: input checks, and the call of the CPU or the CUDA launcher
// by the inputs' device. The only files besides bindings.cpp that see torch's headers.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstddef>

#ifdef WITH_CUDA
// Not ATen/cuda/CUDAContext.h: it needs cuBLAS', cuSPARSE's and cuSOLVER's headers, which a
// CUDA toolkit may lack.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
// The argument (a lambda of the stream) where this build has CUDA kernels, nullptr where not.
#define CUDA_EXT_ON_CUDA(...) __VA_ARGS__
#else
#define CUDA_EXT_ON_CUDA(...) nullptr
#endif

namespace cuda_ext {

// A tensor the launchers can read: `dtype`, contiguous, on `device` (that of the op's first input).
inline void check(const at::Tensor &tensor, const char *name, at::ScalarType dtype, const at::Device &device) {
    TORCH_CHECK(tensor.scalar_type() == dtype, "cuda_ext: ", name, " must be ", dtype, ", got ", tensor.scalar_type());
    TORCH_CHECK(tensor.device() == device, "cuda_ext: ", name, " is on ", tensor.device(),
                " but the op's other inputs are on ", device, ": move them to one device");
    TORCH_CHECK(tensor.is_contiguous(), "cuda_ext: ", name, " must be contiguous");
}

inline void check_shape(bool fits, const char *what) { TORCH_CHECK(fits, "cuda_ext: ", what); }

template <class OnCpu>
void launch(const at::Tensor &like, OnCpu on_cpu, std::nullptr_t) {
    TORCH_CHECK(like.is_cpu(), "cuda_ext: this build has no CUDA kernels (torch without CUDA, or no nvcc when it "
                "was built); use AVATAR3D_BACKEND=torch");
    on_cpu(at::get_num_threads());
}

#ifdef WITH_CUDA
template <class OnCpu, class OnCuda>
void launch(const at::Tensor &like, OnCpu on_cpu, OnCuda on_cuda) {
    if (!like.is_cuda()) return launch(like, on_cpu, nullptr);
    const c10::cuda::CUDAGuard guard(like.device());
    on_cuda(static_cast<void *>(c10::cuda::getCurrentCUDAStream().stream()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
}
#endif

}  // namespace cuda_ext
