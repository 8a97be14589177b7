// Hash-grid encoding: input checks and allocation; the launchers are in hashgrid_cpu.cpp and hashgrid.cu.
#include "launchers.h"
#include "ops.h"
#include "tensors.h"

namespace cuda_ext {

static Grid checked_grid(const at::Tensor &points, const at::Tensor &table, const at::Tensor &resolutions) {
    const auto device = points.device();
    check(points, "points", at::kFloat, device);
    check(table, "table", at::kFloat, device);
    check(resolutions, "resolutions", at::kLong, device);
    check_shape(points.dim() == 2 && (points.size(1) == 2 || points.size(1) == 3), "points must be (N, 2) or (N, 3)");
    check_shape(table.dim() == 3 && resolutions.dim() == 1 && resolutions.size(0) == table.size(0),
                "table must be (L, T, F) with one resolution per level");
    const int64_t rows = table.size(1);
    check_shape(rows > 0 && (rows & (rows - 1)) == 0, "the table's rows per level must be a power of two");
    return Grid{table.data_ptr<float>(), resolutions.data_ptr<int64_t>(), table.size(0), rows, table.size(2)};
}

at::Tensor grid_forward(const at::Tensor &points, const at::Tensor &table, const at::Tensor &resolutions) {
    const Grid grid = checked_grid(points, table, resolutions);
    const int64_t count = points.size(0);
    const int dims = (int)points.size(1);
    at::Tensor out = at::empty({count, grid.levels * grid.features}, points.options());
    launch(
        points,
        [&](int threads) { grid_forward_cpu(points.data_ptr<float>(), count, dims, grid, out.data_ptr<float>(), threads); },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            grid_forward_cuda(points.data_ptr<float>(), count, dims, grid, out.data_ptr<float>(), stream);
        }));
    return out;
}

std::vector<at::Tensor> grid_backward(const at::Tensor &points, const at::Tensor &table,
                                      const at::Tensor &resolutions, const at::Tensor &v_out, bool table_gradient,
                                      bool points_gradient) {
    const Grid grid = checked_grid(points, table, resolutions);
    const int64_t count = points.size(0);
    const int dims = (int)points.size(1);
    check(v_out, "v_out", at::kFloat, points.device());
    check_shape(v_out.dim() == 2 && v_out.size(0) == count && v_out.size(1) == grid.levels * grid.features,
                "v_out must be (N, L * F)");
    at::Tensor v_table = table_gradient ? at::zeros_like(table) : at::Tensor();
    at::Tensor v_points = points_gradient ? at::empty({grid.levels, count, dims}, points.options()) : at::Tensor();
    float *table_out = table_gradient ? v_table.data_ptr<float>() : nullptr;
    float *points_out = points_gradient ? v_points.data_ptr<float>() : nullptr;
    launch(
        points,
        [&](int threads) {
            grid_backward_cpu(points.data_ptr<float>(), count, dims, grid, v_out.data_ptr<float>(), table_out,
                              points_out, threads);
        },
        CUDA_EXT_ON_CUDA([&](void *stream) {
            grid_backward_cuda(points.data_ptr<float>(), count, dims, grid, v_out.data_ptr<float>(), table_out,
                               points_out, stream);
        }));
    return {v_table, v_points};
}

}  // namespace cuda_ext
