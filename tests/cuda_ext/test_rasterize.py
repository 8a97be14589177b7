"""The Gaussian rasteriser's twin against independent references: gsplat's pure-PyTorch tile
binning, nerfacc's compositing weights, and a per-pixel loop written from 3DGS's rules. (The
kernels are held to the twin in test_twins.py.)"""

import pytest
import torch

from cuda_ext import torch_impl
from test_twins import splats


def test_tile_bins_match_gsplat():
    gsplat = pytest.importorskip("gsplat.cuda._torch_impl")
    (means, conics, _, _), (offsets, ids, width, height, tile_size) = splats(count=40, seed=1)
    inverse = torch.stack([torch.stack([conics[:, 0], conics[:, 1]], -1),
                           torch.stack([conics[:, 1], conics[:, 2]], -1)], -2)
    radii = (3 * torch.linalg.eigvalsh(torch.linalg.inv(inverse))[:, 1].sqrt()).ceil()[:, None].expand(40, 2)
    radii = radii.clone()
    radii[:3] = 0  # culled
    depths = torch.randperm(40).float() + 1
    offsets, ids = torch_impl.tile_bins(means, radii, depths, width, height, tile_size)
    tiles_x, tiles_y = -(-width // tile_size), -(-height // tile_size)
    _, isect_ids, flatten_ids = gsplat._isect_tiles(means[None], radii[None].int(), depths[None], tile_size,
                                                    tiles_x, tiles_y)
    gsplat_offsets = gsplat._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten()
    assert ids.tolist() == flatten_ids.tolist()
    assert offsets[:-1].tolist() == gsplat_offsets.tolist() and int(offsets[-1]) == len(ids) > 0
    assert not set(ids.tolist()) & {0, 1, 2}


def test_rasterize_matches_nerfacc_compositing_and_its_gradients():
    """Faint Gaussians (no pixel's transmittance nears the stop): nerfacc's weights from the alphas
    the rules give each pixel's list (gsplat's CPU-less `accumulate` does the same on a GPU) make
    the same image, and autograd through them the same gradients."""
    nerfacc = pytest.importorskip("nerfacc")
    gaussians, (offsets, ids, width, height, tile_size) = splats(opacity=(0.02, 0.3), seed=2)
    tiles_x = -(-width // tile_size)
    weights = torch.rand(height, width, 4, generator=torch.Generator().manual_seed(0))

    def loss(image, alpha):
        return (image * weights[..., :3]).sum() + (alpha * weights[..., 3]).sum()

    ours = [x.clone().requires_grad_() for x in gaussians]
    image = torch_impl.rasterize(*ours, offsets, ids, width, height, tile_size)
    loss(image["rgb"], image["alpha"]).backward()

    theirs = [x.clone().requires_grad_() for x in gaussians]
    means, conics, colours, opacities = theirs
    longest = int((offsets[1:] - offsets[:-1]).max())
    rgb, alpha = [], []
    for row in range(height):
        for column in range(width):
            tile = (row // tile_size) * tiles_x + column // tile_size
            listed = ids[offsets[tile]:offsets[tile + 1]]
            delta = means[listed] - torch.tensor([column + 0.5, row + 0.5])
            a, b, c = conics[listed].unbind(-1)
            sigma = 0.5 * (a * delta[:, 0] ** 2 + c * delta[:, 1] ** 2) + b * delta[:, 0] * delta[:, 1]
            alphas = torch.clamp_max(opacities[listed] * torch.exp(-sigma), 0.999)
            alphas = alphas * ((sigma >= 0) & (alphas.detach() >= torch_impl.SPLAT_MIN_ALPHA))
            padded = torch.nn.functional.pad(alphas, (0, longest - len(alphas)))
            w, _ = nerfacc.render_weight_from_alpha(padded[None])
            rgb.append((w[0, :len(listed), None] * colours[listed]).sum(0))
            alpha.append(w.sum())
    loss(torch.stack(rgb).reshape(height, width, 3), torch.stack(alpha).reshape(height, width)).backward()
    assert float((1 - image["alpha"].detach()).min()) > 0.01  # far from the stop
    torch.testing.assert_close(image["rgb"], torch.stack(rgb).reshape(height, width, 3).detach(), atol=1e-5,
                               rtol=1e-5)
    torch.testing.assert_close(image["alpha"], torch.stack(alpha).reshape(height, width).detach(), atol=1e-5,
                               rtol=1e-5)
    for mine, reference in zip(ours, theirs):
        assert float(reference.grad.abs().max()) > 0
        torch.testing.assert_close(mine.grad, reference.grad, atol=1e-4, rtol=1e-4)


def test_rasterize_follows_the_rules_pixel_by_pixel():
    """Opaque Gaussians, so pixels stop early and alphas clamp: a loop over each pixel's list."""
    gaussians, (offsets, ids, width, height, tile_size) = splats(count=200, width=19, height=13, tile_size=4,
                                                                 opacity=(0.8, 1.0), seed=3)
    means, conics, colours, opacities = gaussians
    opacities[::7] = 1.0  # clamped to 0.999 at their centres, here pixel centres (the lists move by < 1 px)
    means[::7] = means[::7].floor() + 0.5
    image = torch_impl.rasterize(*gaussians, offsets, ids, width, height, tile_size)
    tiles_x, stopped, clamped = -(-width // tile_size), 0, 0
    for row in range(height):
        for column in range(width):
            tile = (row // tile_size) * tiles_x + column // tile_size
            transmittance, colour = 1.0, torch.zeros(3)
            for g in ids[offsets[tile]:offsets[tile + 1]].tolist():
                dx, dy = float(means[g, 0]) - column - 0.5, float(means[g, 1]) - row - 0.5
                sigma = 0.5 * (conics[g, 0] * dx * dx + conics[g, 2] * dy * dy) + conics[g, 1] * dx * dy
                alpha = min(0.999, float(opacities[g] * torch.exp(-sigma)))
                clamped += alpha == 0.999
                if sigma < 0 or alpha < 1 / 255:
                    continue
                if transmittance * (1 - alpha) <= 1e-4:
                    stopped += 1
                    break
                colour += alpha * transmittance * colours[g]
                transmittance *= 1 - alpha
            torch.testing.assert_close(image["rgb"][row, column], colour, atol=1e-5, rtol=1e-5)
            assert float(image["alpha"][row, column]) == pytest.approx(1 - transmittance, abs=1e-5)
    assert stopped > 10 and clamped > 0  # both rules were exercised
