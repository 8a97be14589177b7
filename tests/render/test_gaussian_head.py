"""The Gaussian head: seeding, the landmark warp that poses it, upkeep, and its place in the avatar."""

import math

import pytest
import torch

from avatar3d.face import topology as topo
from avatar3d.face.model import FACE_WIDTH
from avatar3d.render.avatar import Avatar, View
from avatar3d.render.conditions import Conditions
from avatar3d.render.config import GaussianConfig, HashGridConfig, TorsoConfig
from avatar3d.render.gaussians import MAX_OFFSET, MIN_OPACITY, GaussianHead, colours_from_frame, seed_gaussians
from avatar3d.render.splat import rotations
from avatar3d.render.torso import TorsoField

SMALL = GaussianConfig(face_count=600, shell_count=600, mouth_count=100, hidden=16, max_count=2000)
BOX = (torch.tensor([-0.15, -0.2, -0.12]), torch.tensor([0.15, 0.15, 0.16]))


@pytest.fixture(scope="module")
def canonical(truth):
    return torch.from_numpy(truth["rest_landmarks"]).float()


def _conditions(landmarks: torch.Tensor) -> Conditions:
    count = len(landmarks)
    return Conditions(rotation=torch.eye(3).expand(count, 3, 3).clone(),
                      translation=torch.tensor([[0.0, 0.0, -0.7]]).expand(count, 3).clone(),
                      landmarks=landmarks, eye=torch.ones(count), frame_ids=torch.arange(count))


def _head(canonical, config=SMALL, frames=3, warp_index=torch.arange(0, 478, 5)) -> GaussianHead:
    seeds = seed_gaussians(config, canonical, *BOX)
    head = GaussianHead(config, *BOX, canonical, warp_index, frames, len(seeds["means"]))
    with torch.no_grad():
        for name, value in seeds.items():
            getattr(head, name).copy_(value)
    return head


def test_seeds_cover_the_face_mesh_the_head_around_it_and_the_mouth_behind_the_lips(canonical):
    seeds = seed_gaussians(SMALL, canonical, *BOX)
    means, mouth = seeds["means"], seeds["inner_mouth"] > 0
    face = means[:SMALL.face_count]
    surface = canonical[:topo.NUM_SURFACE]
    # Face seeds lie on the mesh: each is within a triangle's size of a landmark, and inside its extent.
    assert float(torch.cdist(face, surface).min(1).values.max()) < 0.1 * FACE_WIDTH
    assert bool(((face[:, :2] >= surface[:, :2].min(0).values - 1e-6) & (face[:, :2] <= surface[:, :2].max(0).values + 1e-6)).all())
    # Their normals (the Gaussians' shortest axes) face the camera's side, mostly head-on as a face does.
    axes = rotations(seeds["quats"]) @ torch.nn.functional.one_hot(seeds["log_scales"].argmin(1), 3).float()[:, :, None]
    facing = axes[:SMALL.face_count, 2, 0]
    assert float(facing.min()) >= -1e-5 and float(facing.median()) > 0.5
    # The shell reaches beyond the face on every side; none of it sits in front of the face.
    shell = means[SMALL.face_count:][~mouth[SMALL.face_count:]]
    assert len(shell) == SMALL.shell_count
    assert float(shell[:, 2].min()) < -0.1 and float(shell[:, 1].max()) > float(surface[:, 1].max())
    # The inner mouth lies between the mouth corners, behind the lips.
    assert int(mouth.sum()) == SMALL.mouth_count
    lips = canonical[list(topo.LIPS)]
    inner = means[mouth]
    assert bool((inner[:, 0] >= lips[:, 0].min()).all() and (inner[:, 0] <= lips[:, 0].max()).all())
    assert bool((inner[:, 2] < lips[:, 2].min()).all())


def test_neutral_frame_leaves_the_gaussians_where_they_are_and_a_moved_landmark_carries_its_neighbours(canonical):
    chin = topo.CHIN
    head = _head(canonical, warp_index=torch.tensor([chin]))  # the chin alone drives the warp
    with torch.no_grad():  # a few Gaussians right at the chin
        head.means[:5] = canonical[chin] + 0.002 * torch.randn(5, 3, generator=torch.Generator().manual_seed(0))
    moved = canonical.clone()
    moved[chin, 1] -= 0.01  # the chin drops 1 cm
    codes = head.frame_codes(_conditions(torch.stack([canonical, moved])))
    with torch.no_grad():
        still, posed = head.posed(codes, 0)["means"], head.posed(codes, 1)["means"]
    neutral = head.means.detach()
    assert torch.allclose(still, neutral, atol=1e-6)
    near = (neutral - canonical[chin]).norm(dim=-1) < 0.5 * head.config.warp_radius
    far = (neutral - canonical[chin]).norm(dim=-1) > 8 * head.config.warp_radius
    assert near.any() and far.any()
    shift = (posed - neutral)[near]
    assert float(shift[:, 1].max()) < -0.88 * 0.01  # carried down with the chin: w >= exp(-1/8) within r/2
    assert float((posed - neutral)[far].abs().max()) < 1e-6


def test_deformation_offsets_are_bounded(canonical):
    head = _head(canonical)
    with torch.no_grad():
        head.deform[-1].bias.fill_(100.0)
    codes = head.frame_codes(_conditions(canonical[None]))
    with torch.no_grad():
        offset = head.posed(codes, 0)["means"] - head.means
    assert float(offset.abs().max()) <= MAX_OFFSET + 1e-6


def test_posing_is_the_deformation_network_on_its_whole_input(canonical):
    """posed splits the network's first layer into a frame-independent part and the frames'
    region codes; it must equal the network run on the concatenated input."""
    head = _head(canonical)
    with torch.no_grad():
        for parameter in head.deform.parameters():
            parameter.normal_(0, 0.3, generator=torch.Generator().manual_seed(parameter.numel()))
    moved = canonical.clone()
    moved[list(topo.LOWER_LIP_OUTER)] += torch.tensor([0.0, -0.01, 0.0])
    codes = head.frame_codes(_conditions(torch.stack([canonical, moved])))
    with torch.no_grad():
        encoded = head.encode()
        for frame in range(2):
            condition = (encoded["attention"][:, :, None] * codes["regions"][frame][None]).flatten(1)
            whole = torch.cat([encoded["encoding"], condition, head.inner_mouth[:, None]], 1)
            change = torch.tanh(head.deform(whole))
            posed = head.posed(codes, frame, encoded)
            torch.testing.assert_close(posed["opacities"], torch.sigmoid(head.opacity_logits + 4 * change[:, 3]))
            torch.testing.assert_close(posed["albedo"], torch.sigmoid(head.albedo_logits + 4 * change[:, 4:]))
        difference = head.posed(codes, 0, encoded)["albedo"] - head.posed(codes, 1, encoded)["albedo"]
    assert float(difference.abs().max()) > 1e-4  # the frames' codes differ, and so do their albedos


def test_encoding_is_kept_for_rendering_until_a_parameter_changes(canonical):
    head = _head(canonical)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.01)
    with torch.no_grad():
        first = head.encode()
        assert head.encode() is first
    loss = head.encode()["deform_base"].square().sum() + head.encode()["covariances"].sum()  # with autograd: afresh
    loss.backward()
    optimizer.step()  # changes the parameters in place
    with torch.no_grad():
        second = head.encode()
        assert second is not first and not torch.equal(second["deform_base"], first["deform_base"])
        head.densify_and_prune(torch.rand(len(head)), optimizer)
        third = head.encode()
        assert third is not second and len(third["covariances"]) == len(head)


def test_densify_and_prune_drops_faint_ones_grows_pulled_ones_and_keeps_their_optimiser_state(canonical):
    head = _head(canonical)
    optimizer = torch.optim.Adam([head.means, head.quats, head.log_scales, head.opacity_logits, head.albedo_logits])
    head.means.sum().backward()
    optimizer.step()
    count = len(head)
    with torch.no_grad():
        head.opacity_logits[:10] = math.log(MIN_OPACITY / 2)  # faint
    pull = torch.zeros(count)
    pull[100:120] = 1.0  # pulled hard: split (large seeds) or cloned
    kept_state = optimizer.state[head.means]["exp_avg"][10:].clone()
    added, removed = head.densify_and_prune(pull, optimizer)
    assert removed >= 10 and added >= 20
    assert len(head) == count - removed + added
    assert all(len(getattr(head, name)) == len(head) for name in ("quats", "log_scales", "opacity_logits", "albedo_logits"))
    assert len(head.inner_mouth) == len(head)
    assert optimizer.state[head.means]["exp_avg"].shape == head.means.shape
    # Gaussians that were neither faint nor pulled keep their values and moments, in order.
    untouched = torch.ones(count, dtype=torch.bool)
    untouched[:10] = False
    untouched[100:120] = False
    assert torch.equal(optimizer.state[head.means]["exp_avg"][:int(untouched.sum())], kept_state[untouched[10:]])
    optimizer.step()  # the optimiser still works with the new sizes


def test_densification_stops_at_the_cap(canonical):
    config = GaussianConfig(face_count=600, shell_count=600, mouth_count=100, hidden=16, max_count=1310)
    head = _head(canonical, config)
    optimizer = torch.optim.Adam([head.means])
    head.densify_and_prune(torch.rand(len(head)), optimizer)
    assert len(head) <= 1310


def test_colours_come_from_the_head_pixels_the_gaussians_project_onto():
    image = torch.zeros(8, 8, 3)
    image[:, :4] = torch.tensor([1.0, 0.0, 0.0])  # left half red
    image[:, 4:] = torch.tensor([0.0, 0.0, 1.0])
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:, :6] = True
    K = torch.tensor([[8.0, 0.0, 4.0], [0.0, 8.0, 4.0], [0.0, 0.0, 1.0]])
    camera = (torch.eye(3), torch.tensor([0.0, 0.0, 1.0]))  # camera 1 unit in front of the origin, looking at it
    points = torch.tensor([[-0.25, 0.0, 0.0], [0.1, 0.0, 0.0], [0.4, 0.0, 0.0]])  # columns 2, 4.8, 7.2
    colours = colours_from_frame(points, image, mask, camera, K)
    head_mean = image[mask].mean(0)
    assert torch.allclose(colours[0], torch.tensor([1.0, 0.0, 0.0]))
    assert torch.allclose(colours[1], torch.tensor([0.0, 0.0, 1.0]))
    assert torch.allclose(colours[2], head_mean)  # outside the head mask


def _avatar(canonical) -> Avatar:
    head = _head(canonical)
    torso = TorsoField(TorsoConfig(grid=HashGridConfig(levels=2, log2_table_size=8, base_resolution=4,
                                                       finest_resolution=16), hidden=8))
    K = torch.tensor([[80.0, 0.0, 32.0], [0.0, 80.0, 32.0], [0.0, 0.0, 1.0]])  # the head fits in the frame
    return Avatar(head, torso, K, 64).eval()


def test_avatar_splats_the_head_shades_it_and_its_passes_recompose_the_frame(canonical):
    avatar = _avatar(canonical)
    frame = _conditions(canonical[None])
    out = avatar.render_frame(frame, torch.full((64, 64, 3), 0.5))
    head_alpha = out["head_alpha"][..., 0]
    assert float(head_alpha[32, 32]) > 0.9 and float(head_alpha[0, 0]) < 0.01  # the face in the middle, not in a corner
    recomposed = out["albedo"] * out["shading"] + out["residual"] + (1 - out["alpha"]) * 0.5
    assert torch.allclose(recomposed, out["rgb"], atol=1e-4)
    # Depth: the camera's distance to the face (the camera is 0.7 in front of the head's origin).
    depth = float(out["depth"][32, 32, 0])
    surface = canonical[:topo.NUM_SURFACE, 2]
    assert 0.7 - float(surface.max()) - 0.005 < depth < 0.7 - float(surface.min())
    # Normals in the middle of the face point at the camera.
    assert float(out["normal"][32, 32, 2]) > 0.5


def test_another_resolution_and_another_view_render_the_same_head(canonical):
    avatar = _avatar(canonical)
    frame = _conditions(canonical[None])
    small = avatar.render_frame(frame, None, with_torso=False)["head_alpha"][..., 0]
    large = avatar.render_frame(frame, None, 128, with_torso=False)["head_alpha"][..., 0]
    assert abs(float(small.mean()) - float(large.mean())) < 0.02  # the same share of the frame
    turned = avatar.render_frame(frame, None, with_torso=False, view=View(
        avatar.K, torch.eye(3), torch.tensor([0.05, 0.0, 0.0]), 64, 64))["head_alpha"][..., 0]
    columns = torch.arange(64).float()
    centre = lambda alpha: float((alpha.sum(0) * columns).sum() / alpha.sum())
    # The camera moved 0.05 right: the head moves left in the image, by 0.05 / 0.6 * 80 = 6.7 pixels at the face.
    assert centre(small) - 9 < centre(turned) < centre(small) - 4


def test_checkpoint_round_trip_keeps_the_gaussian_count(canonical):
    avatar = _avatar(canonical)
    with torch.no_grad():
        avatar.head.albedo_logits.normal_()
    rebuilt = Avatar.from_payload(avatar.payload())
    assert rebuilt.backend == "gaussians" and len(rebuilt.head) == len(avatar.head)
    frame = _conditions(canonical[None])
    assert torch.allclose(rebuilt.render_frame(frame)["rgb"], avatar.eval().render_frame(frame)["rgb"])
