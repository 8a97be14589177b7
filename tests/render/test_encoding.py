"""Tests for avatar3d.render.encoding and avatar3d.render.backend."""

import logging

import pytest
import torch
import torch.nn.functional as nnf

from avatar3d.errors import BadArgumentError
from avatar3d.render import backend
from avatar3d.render.config import HashGridConfig
from avatar3d.render.encoding import HashGrid, encode, level_resolutions
from cuda_ext.torch_impl import is_dense


def random_grid(config, dims, seed=0):
    """A float64 grid whose table is N(0, 1), so errors are not hidden by tiny values."""
    grid = HashGrid(config, dims=dims).double()
    with torch.no_grad():
        grid.table.copy_(torch.randn(grid.table.shape, generator=torch.Generator().manual_seed(seed)))
    return grid


def dense_reference(grid, points, level):
    """Level ``level`` evaluated on its dense (N+1)^D vertex grid with grid_sample."""
    res, dims, features = grid.resolutions[level], grid.dims, grid.config.features_per_level
    side = res + 1
    rows = grid.table[level, : side**dims]  # row x + y*side (+ z*side^2)
    volume = rows.T.reshape(1, features, *([side] * dims))  # (1, F, [Z,] Y, X)
    coords = (points * 2 - 1).reshape(1, *([1] * (dims - 1)), -1, dims)  # grid_sample wants [-1, 1]
    sampled = nnf.grid_sample(volume, coords, mode="bilinear", align_corners=True)
    return sampled.reshape(features, -1).T


def hashed_row(vertex, size):
    """Instant-NGP hash of an integer vertex, in Python ints (no overflow possible)."""
    row = 0
    for coordinate, prime in zip(vertex, (1, 2654435761, 805459861)):
        row ^= coordinate * prime
    return row % size


def level_slice(grid, level):
    f = grid.config.features_per_level
    return slice(level * f, (level + 1) * f)


def test_resolutions_grow_geometrically_from_base_to_finest():
    res = level_resolutions(HashGridConfig())
    assert res[0] == 16 and res[-1] == 2048 and len(res) == 16
    assert res == tuple(sorted(set(res)))
    assert level_resolutions(HashGridConfig(levels=2, base_resolution=2, finest_resolution=4)) == (2, 4)


def test_default_grid_shape_and_init_range():
    grid = HashGrid()
    assert grid.table.shape == (16, 2**19, 2) and grid.table.dtype == torch.float32
    assert grid.table.abs().max() <= 1e-4 and grid.table.std() > 1e-5
    out = grid(torch.rand(100, 3))
    assert out.shape == (100, 32) and out.dtype == torch.float32
    # Dense levels are exactly those whose (N+1)^3 grid fits in 2^19 rows: 16..58, not 80.
    assert [is_dense(r, 3, 2**19) for r in grid.resolutions[4:6]] == [True, False]


@pytest.mark.parametrize("dims", [2, 3])
def test_dense_levels_match_grid_sample_interpolation(dims):
    config = HashGridConfig(levels=3, features_per_level=2, log2_table_size=14,
                            base_resolution=4, finest_resolution=16)
    grid = random_grid(config, dims)
    assert all(is_dense(r, dims, 2**14) for r in grid.resolutions)
    points = torch.rand(500, dims, dtype=torch.float64)
    points[:4] = torch.tensor([[0.0] * dims, [1.0] * dims, [0.0] * (dims - 1) + [1.0], [0.5] * dims],
                              dtype=torch.float64)
    out = grid(points)
    for level in range(config.levels):
        ref = dense_reference(grid, points, level)
        torch.testing.assert_close(out[:, level_slice(grid, level)], ref, atol=1e-6, rtol=0)


@pytest.mark.parametrize("dims", [2, 3])
def test_hashed_level_at_vertices_returns_the_hashed_row(dims):
    config = HashGridConfig(levels=2, features_per_level=2, log2_table_size=8,
                            base_resolution=8, finest_resolution=64)
    grid = random_grid(config, dims)
    res, size = grid.resolutions[1], 2**8
    assert not is_dense(res, dims, size)
    gen = torch.Generator().manual_seed(1)
    vertices = torch.randint(0, res + 1, (200, dims), generator=gen)
    vertices[0] = res  # the far corner, reached through the last cell
    vertices[1] = 0
    out = grid(vertices.double() / res)[:, level_slice(grid, 1)]
    expected = torch.stack([grid.table[1, hashed_row(v.tolist(), size)] for v in vertices])
    torch.testing.assert_close(out, expected, atol=1e-12, rtol=0)


def test_output_is_continuous_across_cell_faces_and_exact_at_vertices():
    config = HashGridConfig(levels=4, log2_table_size=10, base_resolution=4, finest_resolution=64)
    grid = random_grid(config, 3)
    gen = torch.Generator().manual_seed(2)
    # Points on the finest level's cell faces (x = k / 64), where corners switch.
    points = torch.rand(300, 3, generator=gen, dtype=torch.float64)
    points[:, 0] = torch.randint(1, 64, (300,), generator=gen).double() / 64
    step = torch.tensor([1e-9, 0, 0], dtype=torch.float64)
    below, on, above = grid(points - step), grid(points), grid(points + step)
    # The slope is at most resolution * (sum of |corner values|) ~ 64 * 8 * 4 per unit.
    assert (above - on).abs().max() < 1e-5 and (on - below).abs().max() < 1e-5
    # And a random tiny move anywhere changes the output by little.
    points = torch.rand(300, 3, generator=gen, dtype=torch.float64)
    moved = points + 1e-9 * torch.randn(300, 3, generator=gen, dtype=torch.float64)
    assert (grid(moved) - grid(points)).abs().max() < 1e-5


def test_points_outside_the_unit_cube_are_clamped():
    grid = random_grid(HashGridConfig(levels=2, log2_table_size=10, base_resolution=4,
                                      finest_resolution=32), 3)
    inside = torch.tensor([[0.0, 0.3, 1.0], [1.0, 0.0, 0.5]], dtype=torch.float64)
    outside = torch.tensor([[-0.5, 0.3, 1.7], [3.0, -1e-3, 0.5]], dtype=torch.float64)
    torch.testing.assert_close(grid(outside), grid(inside), atol=0, rtol=0)


def test_gradcheck_table_and_points_inside_cells():
    config = HashGridConfig(levels=2, features_per_level=2, log2_table_size=5,
                            base_resolution=2, finest_resolution=4)
    resolutions = level_resolutions(config)
    assert [is_dense(r, 3, 32) for r in resolutions] == [True, False]  # one of each kind
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(2, 32, 2, dtype=torch.float64, generator=gen, requires_grad=True)
    # Keep every point >= 0.2 cell from the finest level's faces (hence the coarser ones').
    cells = torch.randint(0, 4, (6, 3), generator=gen).double()
    points = (cells + 0.2 + 0.6 * torch.rand(6, 3, generator=gen, dtype=torch.float64)) / 4
    points.requires_grad_(True)
    assert torch.autograd.gradcheck(lambda p, t: encode(p, t, resolutions), (points, table))


def test_2d_grid_encodes_image_points():
    grid = HashGrid(HashGridConfig(levels=4, log2_table_size=12, base_resolution=8,
                                   finest_resolution=128), dims=2)
    out = grid(torch.rand(64, 2))
    assert out.shape == (64, 8) and out.dtype == torch.float32
    out.square().sum().backward()
    assert grid.table.grad is not None and grid.table.grad.abs().sum() > 0
    with pytest.raises(ValueError):
        grid(torch.rand(64, 3))


def test_bad_config_raises_bad_argument():
    with pytest.raises(BadArgumentError, match="finest_resolution"):
        HashGrid(HashGridConfig(base_resolution=64, finest_resolution=32))
    with pytest.raises(BadArgumentError, match="dims"):
        HashGrid(HashGridConfig(levels=2, log2_table_size=8), dims=4)


def test_config_fields_have_help_text():
    from avatar3d.config import field_docs

    assert set(field_docs(HashGridConfig)) == {
        "levels", "features_per_level", "log2_table_size", "base_resolution", "finest_resolution"
    }


# --- backend --------------------------------------------------------------------------------


def test_backend_without_a_kernel_is_torch_and_logged_once(monkeypatch, caplog):
    monkeypatch.delenv(backend.ENV_VAR, raising=False)
    monkeypatch.setattr(backend, "_reported", set())
    x = torch.zeros(3)
    with caplog.at_level(logging.INFO, logger="avatar3d.backend"):
        assert backend.choose("march", x) == "torch"
        assert backend.choose("march", x) == "torch"
    lines = [r.getMessage() for r in caplog.records if r.name == "avatar3d.backend"]
    assert len(lines) == 1 and "march" in lines[0] and "torch" in lines[0]


def test_env_forcing_torch_works(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "torch")
    grid = HashGrid(HashGridConfig(levels=2, log2_table_size=8))
    assert backend.choose("encode", grid.table) == "torch"
    assert grid(torch.rand(10, 3)).shape == (10, 4)


def test_env_forcing_cuda_raises_where_unavailable(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "cuda")
    grid = HashGrid(HashGridConfig(levels=2, log2_table_size=8))
    with pytest.raises(BadArgumentError, match="AVATAR3D_BACKEND"):
        grid(torch.rand(10, 3))


def test_env_unknown_value_raises(monkeypatch):
    monkeypatch.setenv(backend.ENV_VAR, "tcnn")
    with pytest.raises(BadArgumentError, match="tcnn"):
        backend.choose("encode", torch.zeros(1))
