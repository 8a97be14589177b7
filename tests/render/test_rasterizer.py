"""Tests for avatar3d.render.rasterizer against a dense brute-force reference."""

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial import ConvexHull

from avatar3d import camera
from avatar3d.render.rasterizer import interpolate, rasterize


def brute_force(points, faces, height, width):
    """Dense float64 reference: every pixel centre against every triangle.

    Returns:
        face (H, W), bary (H, W, 3), depth (H, W) like Fragments, plus
        ``ambiguous`` (H, W) bool: a pixel centre within 1e-6 px of some edge
        (coverage depends on the tie rule) or two covering surfaces within
        1e-6 in depth (visibility is a near-tie), where results may differ.
    """
    p = points.double()
    tri = p[faces]  # (F, 3, 3)
    jj, ii = torch.meshgrid(torch.arange(width), torch.arange(height), indexing="xy")
    px = (jj + 0.5).double().reshape(-1, 1)  # (N, 1)
    py = (ii + 0.5).double().reshape(-1, 1)
    u, v, z = tri[..., 0], tri[..., 1], tri[..., 2]  # (F, 3)
    edge_values, edge_dist = [], []
    for i, j in ((1, 2), (2, 0), (0, 1)):
        du, dv = u[:, j] - u[:, i], v[:, j] - v[:, i]
        w = du * (py - v[:, i]) - dv * (px - u[:, i])  # (N, F)
        edge_values.append(w)
        edge_dist.append(w.abs() / torch.sqrt(du**2 + dv**2))
    w = torch.stack(edge_values, -1)  # (N, F, 3)
    area = w.sum(-1)
    b = w / area[..., None]
    inside = (b >= 0).all(-1) & (area.abs() > 0) & (z > 1e-6).all(-1)
    q = b / z
    depth = 1.0 / q.sum(-1)
    depth = torch.where(inside, depth, torch.full_like(depth, float("inf")))
    best, face = depth.min(1)
    second = depth.topk(2, dim=1, largest=False).values[:, 1]
    near_edge = (torch.stack(edge_dist, -1).amin(-1) < 1e-6).any(1)
    ambiguous = near_edge | ((second - best).abs() < 1e-6)
    hit = torch.isfinite(best)
    face = torch.where(hit, face, torch.full_like(face, -1))
    pcb = q[torch.arange(len(face)), face.clamp(min=0)] * best[:, None]
    pcb = torch.where(hit[:, None], pcb, torch.zeros_like(pcb))
    shape = (height, width)
    return face.view(shape), pcb.view(*shape, 3), best.view(shape), ambiguous.view(shape)


def random_scene(seed, n_faces=30, height=24, width=32):
    gen = torch.Generator().manual_seed(seed)
    n_verts = n_faces * 3
    u = torch.rand(n_verts, generator=gen) * (width + 10) - 5
    v = torch.rand(n_verts, generator=gen) * (height + 10) - 5
    z = torch.rand(n_verts, generator=gen) * 9 + 1
    points = torch.stack([u, v, z], dim=1)
    faces = torch.randperm(n_verts, generator=gen).view(n_faces, 3)
    return points, faces


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_brute_force(seed, dtype):
    points, faces = random_scene(seed)
    points = points.to(dtype)
    frags = rasterize(points, faces, 24, 32)
    ref_face, ref_bary, ref_depth, ambiguous = brute_force(points, faces, 24, 32)
    clear = ~ambiguous
    assert clear.float().mean() > 0.9
    assert torch.equal(frags.face[clear], ref_face[clear])
    hit = clear & (ref_face >= 0)
    assert hit.sum() > 100  # the scene really overlaps the image
    assert torch.allclose(frags.bary[hit].double(), ref_bary[hit], atol=1e-4)
    assert torch.allclose(frags.depth[hit].double(), ref_depth[hit], rtol=1e-4)
    assert frags.face.dtype == torch.long and frags.bary.dtype == dtype and frags.depth.dtype == dtype


def test_empty_pixels_have_defaults():
    points, faces = random_scene(0, n_faces=3)
    frags = rasterize(points, faces, 24, 32)
    empty = frags.face < 0
    assert empty.any()
    assert torch.isinf(frags.depth[empty]).all()
    assert (frags.bary[empty] == 0).all()
    assert torch.allclose(frags.bary[~empty].sum(-1), torch.ones(1))


def grid_mesh(n=8, spacing=4.0, origin=2.5, jitter=0.0, seed=0):
    """Square grid of 2 n^2 triangles, diagonals alternating, outer border fixed."""
    gen = torch.Generator().manual_seed(seed)
    coords = origin + spacing * torch.arange(n + 1, dtype=torch.float64)
    vv, uu = torch.meshgrid(coords, coords, indexing="ij")
    uv = torch.stack([uu, vv], -1)  # (n+1, n+1, 2)
    if jitter:
        noise = (torch.rand(n - 1, n - 1, 2, generator=gen, dtype=torch.float64) * 2 - 1) * jitter
        uv[1:-1, 1:-1] += noise
    points = torch.cat([uv.reshape(-1, 2), torch.full(((n + 1) ** 2, 1), 2.0, dtype=torch.float64)], 1)
    faces = []
    for r in range(n):
        for c in range(n):
            a, b = r * (n + 1) + c, r * (n + 1) + c + 1
            d, e = a + n + 1, b + n + 1
            # Mixed winding on purpose: there is no back-face culling.
            faces += [[a, b, e], [a, d, e]] if (r + c) % 2 else [[a, b, d], [e, b, d]]
    return points, torch.tensor(faces), origin, origin + spacing * n


@pytest.mark.parametrize("jitter", [0.0, 1.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_shared_edges_cover_every_pixel_exactly_once(jitter, dtype):
    # Vertices on pixel centres (jitter 0) put many pixel centres exactly on
    # shared edges and vertices: the tie rule must give each to one triangle.
    points, faces, lo, hi = grid_mesh(jitter=jitter)
    points = points.to(dtype)
    size = 40
    count = torch.zeros(size, size, dtype=torch.long)
    for f in range(len(faces)):
        count += (rasterize(points, faces[f : f + 1], size, size).face >= 0).long()
    centres = torch.arange(size) + 0.5
    interior = ((centres > lo) & (centres < hi))[:, None] & ((centres > lo) & (centres < hi))[None, :]
    assert (count[interior] == 1).all()
    assert (count <= 1).all()
    # The whole mesh at once: same coverage, no gaps.
    assert (rasterize(points, faces, size, size).face[interior] >= 0).all()


def test_two_triangles_sharing_a_diagonal():
    # Diagonal from (2, 2) to (10, 10) runs exactly through pixel centres.
    points = torch.tensor([[2.0, 2.0, 1.0], [10.0, 2.0, 1.0], [10.0, 10.0, 1.0], [2.0, 10.0, 1.0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    a = rasterize(points, faces[:1], 12, 12).face >= 0
    b = rasterize(points, faces[1:], 12, 12).face >= 0
    assert not (a & b).any()
    square = torch.zeros(12, 12, dtype=torch.bool)
    square[2:10, 2:10] = True
    assert torch.equal(a | b, square)


def projected_icosphere(size=64):
    mesh = trimesh.creation.icosphere(subdivisions=3, radius=1.0)
    verts = torch.tensor(mesh.vertices, dtype=torch.float32) + torch.tensor([0.1, -0.05, -3.0])
    K = camera.intrinsics(1.2 * size, size, size)
    return verts, torch.tensor(mesh.faces), K


def test_closed_mesh_silhouette_has_no_holes():
    size = 64
    verts, faces, K = projected_icosphere(size)
    points = camera.project(verts, K)
    frags = rasterize(points, faces, size, size)
    # A convex mesh projects to the convex hull of its projected vertices.
    hull = ConvexHull(points[:, :2].double().numpy())
    jj, ii = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)
    centres = np.stack([jj.ravel(), ii.ravel()], 1)
    signed = centres @ hull.equations[:, :2].T + hull.equations[:, 2]  # <= 0 inside
    inside = torch.from_numpy((signed.max(1) < -1e-3).reshape(size, size))
    outside = torch.from_numpy((signed.max(1) > 1e-3).reshape(size, size))
    assert inside.sum() > 1000
    assert (frags.face[inside] >= 0).all()
    assert (frags.face[outside] < 0).all()
    # The visible surface is the front one: normals of hit faces point to the camera.
    normals = torch.tensor(trimesh.Trimesh(verts.numpy(), faces.numpy()).face_normals, dtype=torch.float32)
    centroids = verts[faces].mean(1)
    facing = (normals * -centroids).sum(-1) > 0
    assert facing[frags.face[inside]].all()


def test_perspective_correct_interpolation():
    size = 48
    K = camera.intrinsics(40.0, size, size)
    # A strongly slanted quad: depth runs from 1.5 to 6 across the image.
    verts = torch.tensor(
        [[-1.2, -1.0, -1.5], [1.2, -1.0, -1.5], [4.0, 3.0, -6.0], [-4.0, 3.0, -6.0]], dtype=torch.float32
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    frags = rasterize(camera.project(verts, K), faces, size, size)
    mask = frags.mask
    assert mask.sum() > 500
    pos = interpolate(verts, faces, frags)
    uvd = camera.project(pos[mask], K)
    ii, jj = mask.nonzero().unbind(1)
    assert torch.allclose(uvd[:, 0], jj + 0.5, atol=1e-3)
    assert torch.allclose(uvd[:, 1], ii + 0.5, atol=1e-3)
    assert torch.allclose(frags.depth[mask], -pos[mask][:, 2], rtol=1e-5)
    assert (interpolate(verts, faces, frags)[~mask] == 0).all()


def test_interpolate_is_differentiable_in_attributes():
    points, faces = random_scene(1)
    frags = rasterize(points, faces, 24, 32)
    colours = torch.rand(len(points), 3, requires_grad=True)
    image = interpolate(colours, faces, frags)
    assert image.shape == (24, 32, 3)
    image.sum().backward()
    assert colours.grad is not None and colours.grad.sum() > 0


def test_near_plane_and_degenerate_triangles_are_dropped():
    points = torch.tensor(
        [
            [1.0, 1.0, 0.0], [30.0, 1.0, 2.0], [1.0, 20.0, 2.0],  # vertex at depth 0
            [1.0, 1.0, 2.0], [15.0, 10.0, 2.0], [29.0, 19.0, 2.0],  # collinear
            [1.0, 1.0, 2.0], [1.0, 1.0, 2.0], [1.0, 1.0, 2.0],  # a point
        ]
    )
    faces = torch.arange(9).view(3, 3)
    frags = rasterize(points, faces, 24, 32)
    assert (frags.face < 0).all()
    behind = points.clone()
    behind[0, 2] = -1.0
    assert (rasterize(behind, faces, 24, 32).face < 0).all()


def test_offscreen_and_empty_inputs():
    points = torch.tensor([[-50.0, -50.0, 1.0], [-10.0, -50.0, 1.0], [-50.0, -10.0, 1.0]])
    assert (rasterize(points, torch.tensor([[0, 1, 2]]), 8, 8).face < 0).all()
    frags = rasterize(points, torch.zeros(0, 3, dtype=torch.long), 8, 8)
    assert frags.face.shape == (8, 8) and (frags.face < 0).all()


def test_exact_depth_ties_go_to_the_smallest_face_index():
    points = torch.tensor([[0.0, 0.0, 2.0], [16.0, 0.0, 2.0], [0.0, 16.0, 2.0]])
    faces = torch.tensor([[0, 1, 2], [2, 0, 1], [1, 2, 0]])
    frags = rasterize(points, faces[[2, 1, 0]], 16, 16)
    assert set(frags.face[frags.mask].tolist()) == {0}


def test_chunked_matches_unchunked_and_is_deterministic():
    points, faces = random_scene(3, n_faces=60)
    full = rasterize(points, faces, 24, 32)
    again = rasterize(points, faces, 24, 32)
    small = rasterize(points, faces, 24, 32, chunk_pairs=37)
    for other in (again, small):
        assert torch.equal(full.face, other.face)
        assert torch.equal(full.bary, other.bary)
        assert torch.equal(full.depth, other.depth)


def test_large_triangles_are_clipped_to_the_image():
    points = torch.tensor([[-1e6, -1e6, 1.0], [1e6, -1e6, 1.0], [0.0, 1e6, 1.0]])
    frags = rasterize(points, torch.tensor([[0, 1, 2]]), 16, 16)
    assert frags.mask.all()
    assert torch.allclose(frags.depth, torch.ones(16, 16))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_huge_shared_triangles_cover_every_pixel_once(dtype):
    # Far off-screen vertices make rounding coarse; the shared diagonal still
    # crosses the image and must split it without gaps or overlap.
    points = torch.tensor(
        [[-1e6, -1e6 + 3.3, 1.0], [1e6, -1e6, 2.0], [1e6 + 0.7, 1e6, 3.0], [-1e6, 1e6, 1.5]], dtype=dtype
    )
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    a = rasterize(points, faces[:1], 32, 32).face >= 0
    b = rasterize(points, faces[1:], 32, 32).face >= 0
    assert a.any() and b.any()
    assert not (a & b).any() and (a | b).all()
