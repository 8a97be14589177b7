// Landmark warp: input checks and allocation; the launchers are in warp_cpu.cpp and warp.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

static Warp checked_warp(const at::Tensor &points, const at::Tensor &frame, const at::Tensor &anchors,
                         const at::Tensor &shifts, double radius) {
    const auto device = points.device();
    check(points, "points", at::kFloat, device);
    check(frame, "frame", at::kLong, device);
    check(anchors, "anchors", at::kFloat, device);
    check(shifts, "shifts", at::kFloat, device);
    check_shape(points.dim() == 2 && points.size(1) == 3, "points must be (N, 3)");
    check_shape(frame.dim() == 1 && frame.size(0) == points.size(0), "frame must be (N,), one frame per point");
    check_shape(anchors.dim() == 3 && anchors.size(2) == 3 && shifts.sizes() == anchors.sizes(),
                "anchors and shifts must both be (B, M, 3)");
    check_shape(radius > 0, "the warp radius must be positive");
    // Frames index anchors. On the CPU this is checked here; on CUDA it would cost a sync, and
    // the Python wrapper, which makes the frames from counts, keeps them in range.
    check_shape(!frame.is_cpu() || points.size(0) == 0 || (frame.min().item<int64_t>() >= 0 && frame.max().item<int64_t>() < anchors.size(0)),
                "every frame must index the anchors' first axis");
    return Warp{anchors.data_ptr<float>(), shifts.data_ptr<float>(), anchors.size(1), (float)radius};
}

at::Tensor warp_forward(const at::Tensor &points, const at::Tensor &frame, const at::Tensor &anchors,
                        const at::Tensor &shifts, double radius) {
    const Warp warp = checked_warp(points, frame, anchors, shifts, radius);
    at::Tensor out = at::empty_like(points);
    const int64_t count = points.size(0);
    launch(
        points,
        [&](int threads) {
            warp_forward_cpu(points.data_ptr<float>(), frame.data_ptr<int64_t>(), count, warp, out.data_ptr<float>(),
                             threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            warp_forward_cuda(points.data_ptr<float>(), frame.data_ptr<int64_t>(), count, warp, out.data_ptr<float>(),
                              stream);
        }));
    return out;
}

at::Tensor warp_backward(const at::Tensor &points, const at::Tensor &frame, const at::Tensor &anchors,
                         const at::Tensor &shifts, double radius, const at::Tensor &v_out) {
    const Warp warp = checked_warp(points, frame, anchors, shifts, radius);
    check(v_out, "v_out", at::kFloat, points.device());
    check_shape(v_out.sizes() == points.sizes(), "v_out must be (N, 3)");
    at::Tensor v_points = at::empty_like(points);
    const int64_t count = points.size(0);
    launch(
        points,
        [&](int threads) {
            warp_backward_cpu(points.data_ptr<float>(), frame.data_ptr<int64_t>(), count, warp,
                              v_out.data_ptr<float>(), v_points.data_ptr<float>(), threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            warp_backward_cuda(points.data_ptr<float>(), frame.data_ptr<int64_t>(), count, warp,
                               v_out.data_ptr<float>(), v_points.data_ptr<float>(), stream);
        }));
    return v_points;
}

}  // namespace cuda_ext
