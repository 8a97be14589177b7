// The Python bindings of the ops in ops.h, and nothing else.
#include <torch/extension.h>

#include "ops.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
    m.def("grid_forward", &cuda_ext::grid_forward);
    m.def("grid_backward", &cuda_ext::grid_backward);
    m.def("warp_forward", &cuda_ext::warp_forward);
    m.def("warp_backward", &cuda_ext::warp_backward);
    m.def("march", &cuda_ext::march);
    m.def("composite_forward", &cuda_ext::composite_forward);
    m.def("composite_backward", &cuda_ext::composite_backward);
    m.def("sh_forward", &cuda_ext::sh_forward);
    m.def("sh_backward", &cuda_ext::sh_backward);
    m.def("rasterize_forward", &cuda_ext::rasterize_forward);
    m.def("rasterize_backward", &cuda_ext::rasterize_backward);
#ifdef WITH_CUDA
    m.attr("with_cuda") = true;
#else
    m.attr("with_cuda") = false;
#endif
}
