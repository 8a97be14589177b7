"""Z-buffered triangle rasterizer in pure PyTorch (vectorised, CPU-friendly).

Input vertices are already in screen space: ``(u, v, depth)`` as returned by
`avatar3d.camera.project` (u right, v down, in pixels; depth = -z > 0).
Pixel (row i, column j) is sampled at its centre ``(j + 0.5, i + 0.5)``.

Algorithm: every triangle is cut into spans, one per pixel row of its
bounding box (clipped to the image), each span conservatively limited to the
columns where the row meets the triangle; the spans' pixels are enumerated as
(triangle, pixel) candidates; exact edge-function tests decide coverage and
give screen-space barycentrics; a z-buffer built with
``scatter_reduce('amin')`` keeps the nearest fragment per pixel, ties going to
the smallest face index so results are deterministic. The cost is about
linear in the covered area (plus a few pixels per span and per triangle);
candidates are processed in chunks to bound memory.

Coverage rule: a pixel centre exactly on an edge belongs to the triangle that
would cover it after nudging the sample point by an infinitesimal amount down
(+v) and a yet smaller amount left (-u). Edge functions are evaluated in a
canonical vertex order (lexicographic in (u, v)), so two triangles sharing an
edge compute bit-identical values for it; together this makes a watertight
mesh cover every pixel centre of its silhouette exactly once per layer: no
gaps, no double cover along shared edges or at shared vertices.

Not differentiable: everything runs under ``torch.no_grad()``. `interpolate`
is differentiable with respect to the attributes (not the geometry).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

NEAR = 1e-6
"""Triangles with any vertex at depth <= NEAR are dropped (no clipping)."""

CHUNK_PAIRS = 4_000_000
"""Default number of (triangle, pixel) candidates evaluated at once (~0.5 GB peak)."""

# Edge k is opposite vertex k, so its edge function is vertex k's barycentric.
_EDGES = ((1, 2), (2, 0), (0, 1))

# Slack in pixels when limiting spans (plus a part relative to coordinate
# size): the span ends are rounded estimates and the exact edge test decides,
# so spans only need to err on the wide side.
_SPAN_SLACK = 0.05


@dataclass
class Fragments:
    """Per-pixel result of `rasterize` for an (H, W) image.

    Attributes:
        face: (H, W) long, index of the visible triangle, -1 where empty.
        bary: (H, W, 3) perspective-correct barycentric weights of that
            triangle's vertices ``faces[face]``; 0 where empty.
        depth: (H, W) depth in the units of the input depth, +inf where empty.
    """

    face: Tensor
    bary: Tensor
    depth: Tensor

    @property
    def mask(self) -> Tensor:
        """(H, W) bool, True where a triangle is visible."""
        return self.face >= 0


def rasterize(
    points: Tensor, faces: Tensor, height: int, width: int, *, chunk_pairs: int = CHUNK_PAIRS
) -> Fragments:
    """Rasterize triangles with a z-buffer, keeping the nearest one per pixel.

    No back-face culling. Triangles with a vertex at depth <= `NEAR`, with a
    non-finite coordinate or with zero screen area are skipped.

    Args:
        points: (V, 3) ``(u, v, depth)`` per vertex: pixels and depth > 0.
        faces: (F, 3) long vertex indices.
        height: Image height H in pixels.
        width: Image width W in pixels.
        chunk_pairs: Candidate (triangle, pixel) pairs evaluated at once; lower
            it to save memory.

    Returns:
        `Fragments` of shape (H, W); floats in ``points``' dtype (float32 for
        non-float input). Depth is interpolated perspective-correctly (1/depth
        is linear in screen space), as are the barycentrics.
    """
    with torch.no_grad():
        dtype = points.dtype if points.is_floating_point() else torch.float32
        points = points.detach().to(dtype)
        faces = faces.long()
        n_pix = height * width
        zbuf = torch.full((n_pix,), float("inf"), dtype=dtype)
        fbuf = torch.full((n_pix,), -1, dtype=torch.long)
        bbuf = torch.zeros((n_pix, 3), dtype=dtype)

        tris = _setup(points, faces, height, width)
        spans = None if tris is None else _spans(tris)
        if spans is not None:
            # Whole spans per chunk: a span is at most `width` pixels long.
            ends = spans["count"].cumsum(0)
            marks = torch.arange(chunk_pairs, max(int(ends[-1]), chunk_pairs), chunk_pairs)
            bounds = torch.searchsorted(ends, marks, right=True)
            cuts = [0, *bounds.tolist(), len(ends)]
            for r0, r1 in zip(cuts[:-1], cuts[1:]):
                hit = _pixels(tris, spans, r0, r1, width) if r1 > r0 else None
                if hit is not None:
                    _merge(zbuf, fbuf, bbuf, *hit)
        return Fragments(
            face=fbuf.view(height, width),
            bary=bbuf.view(height, width, 3),
            depth=zbuf.view(height, width),
        )


def interpolate(attributes: Tensor, faces: Tensor, fragments: Fragments) -> Tensor:
    """Interpolate per-vertex attributes with the fragments' barycentrics.

    Differentiable with respect to ``attributes``.

    Args:
        attributes: (V, C) per-vertex values (e.g. colours, uvs, camera-space
            positions, normals).
        faces: (F, 3) long, the faces that were rasterized.
        fragments: Output of `rasterize` for these faces.

    Returns:
        (H, W, C) interpolated attributes in ``attributes``' dtype, 0 where empty.
    """
    mask = fragments.face >= 0
    out = attributes.new_zeros(*mask.shape, attributes.shape[-1])
    tri = faces.long()[fragments.face[mask]]  # (N, 3) vertex ids
    weights = fragments.bary[mask].to(attributes.dtype)  # (N, 3)
    out[mask] = (attributes[tri] * weights[..., None]).sum(dim=1)
    return out


def _setup(points: Tensor, faces: Tensor, height: int, width: int) -> dict[str, Tensor] | None:
    """Per-triangle constants: clipped bounding boxes and canonical edges.

    Returns:
        None when no triangle can cover a pixel, else a dict for the K kept
        faces: ``face`` (K,) original ids; ``x0, x1, y0, ny`` (K,) long
        bounding box (first/last column, first row, row count); ``edges``
        (K, 12) ``ax, ay, dx, dy`` for edges 0..2 (3 columns each): canonical
        start vertex and direction with the sign folded in so the interior is
        on the positive side; ``pos`` (3, K)
        bool tie rule (True: a zero edge value counts as inside); ``inv_z``
        (K, 3) reciprocal vertex depths.
    """
    if faces.numel() == 0:
        return None
    n_faces = faces.shape[0]
    tri = points.index_select(0, faces.reshape(-1)).view(n_faces, 3, 3)  # (F, vertex, uvz)
    u, v, z = tri.unbind(-1)  # each (F, 3)
    # Twice the signed screen area; its sign says which side is the interior.
    area2 = (u[:, 1] - u[:, 0]) * (v[:, 2] - v[:, 0]) - (v[:, 1] - v[:, 0]) * (u[:, 2] - u[:, 0])
    # A sum is non-finite iff an entry is (or it overflows, which is garbage anyway);
    # much cheaper than isfinite().all() over tiny dimensions.
    finite = torch.isfinite(tri.view(n_faces, 9).sum(1) + area2)
    ok = (z.amin(1) > NEAR) & finite & (area2 != 0)

    # Column j is a candidate only if its centre j + 0.5 lies within [min u, max u].
    x0 = _to_pixel(u.amin(1) - 0.5, width, torch.ceil).clamp(min=0)
    x1 = _to_pixel(u.amax(1) - 0.5, width, torch.floor).clamp(max=width - 1)
    y0 = _to_pixel(v.amin(1) - 0.5, height, torch.ceil).clamp(min=0)
    y1 = _to_pixel(v.amax(1) - 0.5, height, torch.floor).clamp(max=height - 1)
    ok &= (x1 >= x0) & (y1 >= y0)
    keep = ok.nonzero().squeeze(1)
    if keep.numel() == 0:
        return None
    tri = tri.index_select(0, keep)
    u, v, z = tri.unbind(-1)
    area2 = area2.index_select(0, keep)
    orient = torch.sign(area2)

    ax, ay, dx, dy, pos = [], [], [], [], []
    for i, j in _EDGES:
        # Canonical order: start at the lexicographically smaller (u, v) vertex,
        # so a shared edge is evaluated bit-identically by both its triangles.
        swap = (u[:, j] < u[:, i]) | ((u[:, j] == u[:, i]) & (v[:, j] < v[:, i]))
        a_u, b_u = torch.where(swap, u[:, j], u[:, i]), torch.where(swap, u[:, i], u[:, j])
        a_v, b_v = torch.where(swap, v[:, j], v[:, i]), torch.where(swap, v[:, i], v[:, j])
        # The winding-order edge function is positive inside iff orient > 0 and
        # swapping the edge flips it. Negation is exact in floating point, so
        # folding the sign into (dx, dy) keeps shared edges bit-identical up
        # to sign.
        sign = torch.where(swap, -orient, orient)
        ax.append(a_u)
        ay.append(a_v)
        dx.append((b_u - a_u) * sign)
        dy.append((b_v - a_v) * sign)
        # Tie rule (see module doc): the canonical direction points to +u (or
        # +v when vertical), so nudging the sample down-left moves it to the
        # positive side of the canonical edge function; the triangle owning
        # that side owns the tie.
        pos.append(sign > 0)
    box = torch.stack([x0, x1, y0, y1], dim=1).index_select(0, keep)
    return {
        "face": keep,
        "x0": box[:, 0],
        "x1": box[:, 1],
        "y0": box[:, 2],
        "ny": box[:, 3] - box[:, 2] + 1,
        "edges": torch.stack([*ax, *ay, *dx, *dy], dim=1),
        "pos": torch.stack(pos),
        "inv_z": 1.0 / z,
    }


def _to_pixel(x: Tensor, size: int, rounding) -> Tensor:
    """Round to a long pixel index, clamped first so huge values cannot overflow."""
    return rounding(x.clamp(-1.0, float(size))).long()


def _spans(tris: dict[str, Tensor]) -> dict[str, Tensor] | None:
    """Cut triangles into one span of candidate pixels per bounding-box row.

    The row part ``dx * (py - ay)`` of each edge function is computed here,
    once per span, by the same expression for every triangle sharing the
    edge, which keeps the later per-pixel test bit-identical across them.

    Returns:
        None if no span holds a pixel, else a dict for the S non-empty spans:
        ``tri`` (S,) index into the kept triangles, ``row``, ``col0``,
        ``count`` (S,) long first column and pixel count; ``edge`` (S, 9)
        float per-span edge data: row parts (3), dy (3), ax (3).
    """
    ny = tris["ny"]
    tri = torch.repeat_interleave(torch.arange(len(ny)), ny)
    row = torch.arange(len(tri)) + (tris["y0"] - (ny.cumsum(0) - ny)).index_select(0, tri)
    py = row.to(tris["edges"].dtype) + 0.5
    # One gather of all per-triangle data (much cheaper than one per field).
    ax, ay, dx, dy = tris["edges"].index_select(0, tri).split(3, dim=1)  # each (R, 3)
    parts = dx * (py[:, None] - ay)
    # Inside means part - dy * (px - ax) >= 0: a bound on px unless dy == 0.
    flat = dy == 0
    cross = ax + parts / torch.where(flat, torch.ones_like(dy), dy)
    inf = torch.full_like(cross, float("inf"))
    hi = torch.where(dy > 0, cross, inf).amin(1)
    lo = torch.where(dy < 0, cross, -inf).amax(1)
    empty = (flat & (parts < 0)).any(1)
    x0, x1 = tris["x0"].index_select(0, tri), tris["x1"].index_select(0, tri)
    # Rounding in both the span ends and the exact test grows with coordinate
    # magnitude (|ax| can be huge for triangles reaching far off-screen).
    slack = _SPAN_SLACK + 16 * torch.finfo(ax.dtype).eps * (ax.abs().amax(1) + x1.to(ax.dtype) + 1)
    col0 = torch.maximum(_to_pixel(lo - 0.5 - slack, 1 << 30, torch.ceil), x0)
    col1 = torch.minimum(_to_pixel(hi - 0.5 + slack, 1 << 30, torch.floor), x1)
    count = (col1 - col0 + 1).clamp(min=0).masked_fill(empty, 0)
    keep = (count > 0).nonzero().squeeze(1)
    if keep.numel() == 0:
        return None
    edge = torch.cat([parts, dy, ax], dim=1)
    return {
        "tri": tri.index_select(0, keep),
        "row": row.index_select(0, keep),
        "col0": col0.index_select(0, keep),
        "count": count.index_select(0, keep),
        "edge": edge.index_select(0, keep),
    }


def _pixels(
    tris: dict[str, Tensor], spans: dict[str, Tensor], r0: int, r1: int, width: int
) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """Test the pixels of spans ``[r0, r1)`` and keep the nearest per pixel.

    Returns:
        None if nothing is covered, else the chunk's per-pixel winners
        ``(pixel, face, depth, bary)`` with unique flat pixel indices:
        (N,) long, (N,) long original face ids, (N,) depth, (N, 3) bary.
    """
    count = spans["count"][r0:r1]
    span = torch.repeat_interleave(torch.arange(r0, r1), count)  # (P,)
    # Column = position in the chunk minus where its span starts, plus col0.
    shift = spans["col0"][r0:r1] - (count.cumsum(0) - count)
    col = torch.arange(len(span)) + shift.index_select(0, span - r0)
    edge = spans["edge"].index_select(0, span)  # (P, 9), one gather for all
    px = col.to(edge.dtype) + 0.5
    w = edge[:, 0:3] - edge[:, 3:6] * (px[:, None] - edge[:, 6:9])  # (P, 3)
    inside = w > 0
    on_edge = (w == 0).nonzero()
    if on_edge.numel():
        # Exact ties are rare enough to resolve sparsely (see module doc).
        tri = spans["tri"].index_select(0, span.index_select(0, on_edge[:, 0]))
        inside[on_edge[:, 0], on_edge[:, 1]] = tris["pos"][on_edge[:, 1], tri]
    # Column-wise & beats .all(1): reductions over a size-3 dim are slow on CPU.
    sel = (inside[:, 0] & inside[:, 1] & inside[:, 2]).nonzero().squeeze(1)
    if sel.numel() == 0:
        return None
    span = span.index_select(0, sel)
    pixel = spans["row"].index_select(0, span) * width + col.index_select(0, sel)
    tri = spans["tri"].index_select(0, span)
    w = w.index_select(0, sel)  # (N, 3), all >= 0
    total = w[:, 0] + w[:, 1] + w[:, 2]
    good = total > 0  # guards slivers whose three edge values all vanish
    if not bool(good.all()):
        idx = good.nonzero().squeeze(1)
        tri, pixel, w, total = tri[idx], pixel[idx], w[idx], total[idx]
    # Screen-space barycentrics -> perspective-correct ones: weight by 1/z.
    q = (w / total[:, None]) * tris["inv_z"].index_select(0, tri)
    inv_depth = q[:, 0] + q[:, 1] + q[:, 2]
    bary = q / inv_depth[:, None]
    depth = 1.0 / inv_depth
    return _resolve(pixel, tris["face"].index_select(0, tri), depth, bary)


def _resolve(
    pixel: Tensor, face: Tensor, depth: Tensor, bary: Tensor
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Keep the nearest fragment per pixel (smallest face id on exact depth ties)."""
    n = int(pixel.max()) + 1
    zmin = torch.full((n,), float("inf"), dtype=depth.dtype).scatter_reduce_(0, pixel, depth, "amin")
    near = (depth == zmin.index_select(0, pixel)).nonzero().squeeze(1)
    pixel, face, depth, bary = (t.index_select(0, near) for t in (pixel, face, depth, bary))
    fmin = torch.full((n,), -1, dtype=torch.long).scatter_reduce_(0, pixel, face, "amin", include_self=False)
    win = (face == fmin.index_select(0, pixel)).nonzero().squeeze(1)
    return tuple(t.index_select(0, win) for t in (pixel, face, depth, bary))


def _merge(
    zbuf: Tensor, fbuf: Tensor, bbuf: Tensor, pixel: Tensor, face: Tensor, depth: Tensor, bary: Tensor
) -> None:
    """Merge a chunk's per-pixel winners (unique pixels) into the image buffers."""
    cur_z, cur_f = zbuf.index_select(0, pixel), fbuf.index_select(0, pixel)
    better = (depth < cur_z) | ((depth == cur_z) & ((cur_f < 0) | (face < cur_f)))
    idx = better.nonzero().squeeze(1)
    pixel = pixel.index_select(0, idx)
    zbuf.index_copy_(0, pixel, depth.index_select(0, idx))
    fbuf.index_copy_(0, pixel, face.index_select(0, idx))
    bbuf.index_copy_(0, pixel, bary.index_select(0, idx))
