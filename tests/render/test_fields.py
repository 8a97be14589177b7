"""Head and torso fields, the surface cull, and the avatar's checkpoint round trip."""

import numpy as np
import pytest
import torch

from avatar3d.errors import BadInputError
from avatar3d.face import topology as topo
from avatar3d.face.model import FACE_WIDTH
from avatar3d.layers import add_region_codes, linear_with_code
from avatar3d.render.avatar import DRIFT_KNOT_FRAMES, POSE_CORRECTION_DIMS, Avatar, PoseDrift, load_checkpoint
from avatar3d.render.conditions import Conditions
from avatar3d.render.config import HashGridConfig, HeadConfig, MarchConfig, TorsoConfig
from avatar3d.render.head import HeadField, moving_landmarks, region_masks
from avatar3d.render.rays import frame_pixels
from avatar3d.render.sh import LIGHT_PRESETS, front_luminance, shade
from avatar3d.render.torso import HEAD_CODE_DIMS, TorsoField, silhouette_normals
from avatar3d.render.volume import OccupancyGrid, march

TINY_GRID = HashGridConfig(levels=4, log2_table_size=10, base_resolution=4, finest_resolution=32)


@pytest.fixture(scope="module")
def canonical(truth):
    """The virtual actor's neutral landmarks in head space."""
    points = torch.from_numpy(truth["rest_landmarks"]).float()
    assert abs(float((points[topo.FACE_SIDES[0]] - points[topo.FACE_SIDES[1]]).norm()) - FACE_WIDTH) < 0.02
    return points


def _conditions(landmarks: torch.Tensor) -> Conditions:
    count = len(landmarks)
    return Conditions(rotation=torch.eye(3).expand(count, 3, 3).clone(),
                      translation=torch.tensor([[0.0, 0.0, -0.7]]).expand(count, 3).clone(),
                      landmarks=landmarks, eye=torch.ones(count), frame_ids=torch.arange(count))


def _head(canonical, warp_index=None, frames=3):
    warp_index = torch.arange(0, 478, 5) if warp_index is None else warp_index
    return HeadField(HeadConfig(grid=TINY_GRID, hidden=16), torch.full((3,), -0.15), torch.full((3,), 0.2),
                     canonical, warp_index, frames)


def test_region_masks_split_mouth_eyes_and_rest(canonical):
    mouth, eyes, rest = region_masks(canonical)
    assert bool((mouth.int() + eyes.int() + rest.int() == 1).all())  # a partition
    assert all(mouth[i] for i in topo.LIPS) and mouth[topo.CHIN]
    assert all(eyes[i] for i in topo.EYELIDS + topo.RIGHT_IRIS + topo.LEFT_IRIS)
    assert rest[topo.FOREHEAD] and rest[topo.NOSE_TIP]


def test_moving_landmarks_keeps_only_points_that_move(canonical):
    frames = canonical.expand(10, -1, -1).clone()
    lips = list(topo.LOWER_LIP_INNER + topo.LOWER_LIP_OUTER)
    frames[:, lips, 1] -= torch.linspace(0, 0.01, 10)[:, None]
    chosen = moving_landmarks(canonical, frames, count=8)
    assert len(chosen) == 8 and set(chosen.tolist()) <= set(lips)


def test_warp_carries_points_near_a_moved_landmark_back_to_neutral(canonical):
    head = _head(canonical)
    moved = canonical.clone()
    shift = torch.tensor([0.0, -0.01, 0.0])
    moved[head.warp_index] += shift  # every warp landmark moves down 1 cm
    codes = head.frame_codes(_conditions(torch.stack([canonical, moved])))
    near = canonical[head.warp_index[:20]] + 0.001
    far = torch.tensor([[0.0, 0.0, -5.0]])
    same = head.warp(torch.cat([near, far]), [len(near) + 1, 0], codes)
    assert torch.allclose(same, torch.cat([near, far]), atol=1e-6)  # neutral frame: identity
    warped = head.warp(torch.cat([near + shift, far]), [0, len(near) + 1], codes)
    assert torch.allclose(warped[:-1], near, atol=1e-4)  # surrounded by landmarks: the full shift
    assert torch.allclose(warped[-1], far[0])  # far away: untouched


def test_head_field_shapes_ranges_and_mean_appearance_code(canonical):
    head = _head(canonical)
    with torch.no_grad():
        head.appearance.weight.copy_(torch.randn_like(head.appearance.weight))
    conditions = _conditions(canonical.expand(2, -1, -1).clone())
    codes = head.frame_codes(conditions)
    points, dirs = torch.rand(7, 3) * 0.2 - 0.1, torch.nn.functional.normalize(torch.randn(7, 3), dim=-1)
    fresh = head(points, dirs, [3, 4], codes)
    assert torch.equal(fresh.residual, torch.zeros(7, 3))  # colour starts out all albedo x shading
    for parameter in head.parameters():
        parameter.data.normal_(0, 0.3)
    out = head(points, dirs, [3, 4], codes)
    assert out.density.shape == (7,) and bool((out.density >= 0).all())
    assert out.albedo.shape == (7, 3) and bool(((out.albedo >= 0) & (out.albedo <= 1)).all())
    assert torch.allclose(out.normal.norm(dim=-1), torch.ones(7), atol=1e-5)
    assert bool((out.residual.abs() <= 1).all()) and float(out.residual.detach().abs().max()) > 0
    assert out.ambient.shape == (7, head.config.ambient_dims)
    flipped = head(points, -dirs, [3, 4], codes)  # albedo and normal do not depend on the view, the residual does
    assert torch.equal(flipped.albedo, out.albedo) and torch.equal(flipped.normal, out.normal)
    assert not torch.allclose(flipped.residual, out.residual)
    unseen = head.frame_codes(Conditions(**{**conditions.__dict__, "frame_ids": torch.tensor([-1, 1])}))
    assert torch.allclose(unseen["appearance"][0], head.appearance.weight.mean(0))


def test_region_attention_keeps_a_mouth_change_out_of_points_attending_elsewhere(canonical):
    head = _head(canonical)
    opened = canonical.clone()
    mouth, _, _ = region_masks(canonical)
    opened[mouth, 1] -= 0.005
    codes = head.frame_codes(_conditions(torch.stack([canonical, opened])))
    assert torch.allclose(codes["regions"][0, 1:], codes["regions"][1, 1:])  # eye and rest codes unchanged
    assert not torch.allclose(codes["regions"][0, 0], codes["regions"][1, 0])


def test_march_surface_band_keeps_a_band_behind_the_first_dense_cells():
    grid = OccupancyGrid([-1, -1, -1], [1, 1, 1], resolution=8)
    origins = torch.tensor([[0.0, 0.0, 3.0]])
    directions = torch.tensor([[0.0, 0.0, -1.0]])
    t0, t1, valid = march(origins, directions, grid, 0.0, 10.0, 0.05, 64)
    assert torch.equal(march(origins, directions, grid, 0.0, 10.0, 0.05, 64, surface_band=0.3)[2], valid)  # not updated yet
    grid.density[:, :, :6] = 100.0  # solid for z < 0.5: the surface is at t = 2.5
    kept = march(origins, directions, grid, 0.0, 10.0, 0.05, 64, surface_band=0.3)[2]
    assert float(t0[kept].max()) <= 2.5 + 0.3 + 1e-6
    assert bool(kept[valid & (t0 <= 2.8)].all())  # everything up to the band is kept
    assert int(kept.sum()) < int(valid.sum())


def test_torso_field_outputs_and_head_code_normalisation():
    torso = TorsoField(TorsoConfig(grid=TINY_GRID, hidden=16))
    torso.head_code.fit(torch.stack([torch.full((HEAD_CODE_DIMS,), -1.0), torch.full((HEAD_CODE_DIMS,), 3.0)]))
    torso.head_code.scale.fill_(2.0)  # mean 1, scale 2
    code = torso.head_code(torch.full((2, HEAD_CODE_DIMS), 3.0))
    assert torch.allclose(code, torch.ones_like(code))
    uv = torch.rand(5, 2)
    albedo, alpha, normal = torso(uv, [2, 3], code, torch.rand(5))
    assert albedo.shape == (5, 3) and alpha.shape == (5,)
    assert bool(((alpha > 0) & (alpha < 1)).all())
    assert torch.allclose(normal, torch.tensor([0.0, 0.0, 1.0]).expand(5, 3))  # starts facing the camera
    for parameter in torso.normal_net.parameters():
        parameter.data.normal_(0, 1.0)
    normal = torso(uv, [2, 3], code, torch.rand(5))[2].detach()
    assert torch.allclose(normal.norm(dim=-1), torch.ones(5), atol=1e-5) and bool((normal[:, 2] > 0).all())
    assert float((normal[:, :2]).abs().max()) > 0.05


def _avatar(canonical) -> Avatar:
    torso = TorsoField(TorsoConfig(grid=TINY_GRID, hidden=16))
    K = torch.tensor([[60.0, 0, 16], [0, 60.0, 16], [0, 0, 1]])
    return Avatar(_head(canonical), torso, K, 32, MarchConfig(grid_resolution=16, steps_per_diagonal=32))


@pytest.mark.parametrize("with_after", [False, True])
def test_linear_with_code_is_the_layer_on_the_concatenated_rows(with_after):
    """The torso's layers take a frame's code once per frame, not once per pixel: the same
    values and gradients as the layer on the whole rows."""
    generator = torch.Generator().manual_seed(0)
    layer = torch.nn.Linear(5 + 3 + (2 if with_after else 0), 7)
    before = torch.randn(9, 5, generator=generator, requires_grad=True)
    code = torch.randn(2, 3, generator=generator, requires_grad=True)
    after = torch.randn(9, 2, generator=generator) if with_after else None
    counts = [4, 5]
    rows = [before, code.repeat_interleave(torch.tensor(counts), 0)] + ([after] if with_after else [])
    expected = layer(torch.cat(rows, 1))
    got = linear_with_code(layer, before, code, counts, after)
    torch.testing.assert_close(got, expected)
    weights = torch.randn(9, 7, generator=generator)
    expected_grads = torch.autograd.grad((expected * weights).sum(), [before, code, layer.weight])
    for mine, theirs in zip(torch.autograd.grad((got * weights).sum(), [before, code, layer.weight]), expected_grads):
        torch.testing.assert_close(mine, theirs)
    one_frame = linear_with_code(layer, before[:4], code[:1], [4], None if after is None else after[:4])
    torch.testing.assert_close(one_frame, expected[:4])


@pytest.mark.parametrize("counts", [[6], [4, 0, 5]])
def test_add_region_codes_is_the_layer_on_the_attention_weighted_codes(counts):
    """The head's first ambient layer and the Gaussians' deformation take the region codes once
    per frame, not once per sample: the same values and gradients as the layer on whole rows."""
    generator = torch.Generator().manual_seed(1)
    layer = torch.nn.Linear(5 + 3 * 4, 7)
    rows = torch.randn(sum(counts), 5, generator=generator, requires_grad=True)
    attention = torch.softmax(torch.randn(sum(counts), 3, generator=generator), -1).requires_grad_()
    codes = torch.randn(len(counts), 3, 4, generator=generator, requires_grad=True)
    frame = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    expected = layer(torch.cat([rows, (attention[:, :, None] * codes[frame]).flatten(1)], 1))
    base = torch.nn.functional.linear(rows, layer.weight[:, :5], layer.bias)
    got = add_region_codes(base, layer.weight[:, 5:], attention, codes, counts)
    torch.testing.assert_close(got, expected)
    weights = torch.randn(sum(counts), 7, generator=generator)
    inputs = [rows, attention, codes, layer.weight]
    for mine, theirs in zip(torch.autograd.grad((got * weights).sum(), inputs),
                            torch.autograd.grad((expected * weights).sum(), inputs)):
        torch.testing.assert_close(mine, theirs)


def test_pose_drift_interpolates_its_knots_and_leaves_unseen_frames_alone():
    drift = PoseDrift(num_frames=4 * DRIFT_KNOT_FRAMES)
    with torch.no_grad():
        drift.knots.copy_(torch.arange(len(drift.knots), dtype=torch.float32)[:, None].expand(-1, POSE_CORRECTION_DIMS) ** 2)
    half = DRIFT_KNOT_FRAMES // 2
    ids = torch.tensor([0, DRIFT_KNOT_FRAMES, 2 * DRIFT_KNOT_FRAMES + half, -1, 4 * DRIFT_KNOT_FRAMES - 1])
    values = drift(ids)[:, 0]
    share = half / DRIFT_KNOT_FRAMES
    last = (4 * DRIFT_KNOT_FRAMES - 1) / DRIFT_KNOT_FRAMES
    expected = [0.0, 1.0, 4 * (1 - share) + 9 * share, 0.0, 9 * (4 - last) + 16 * (last - 3)]
    assert torch.allclose(values, torch.tensor(expected))
    drift(torch.tensor([DRIFT_KNOT_FRAMES + 1])).sum().backward()  # one frame pulls on its two knots only
    assert drift.knots.grad.abs().sum(1).nonzero().flatten().tolist() == [1, 2]


def test_linear_pose_correction_has_no_shift_towards_the_camera_and_never_extrapolates(canonical):
    # A constant shift towards the camera with a matching field scale gives the same images:
    # unchecked, it drifted. Poses beyond the training range once drove held-out frames to 19 dB.
    avatar = _avatar(canonical)
    training = _conditions(canonical.expand(3, -1, -1).clone())
    training.translation = torch.tensor([[0.0, 0.0, -0.70], [0.01, 0.0, -0.71], [0.02, 0.0, -0.72]])
    avatar.fit_pose_code(training)
    with torch.no_grad():
        avatar.pose_model.bias.fill_(1.0)
        avatar.pose_model.weight.zero_()
        avatar.pose_model.weight[4, 3] = 1.0  # y shift follows the x translation
    linear, _ = avatar.pose_correction(training)
    assert torch.allclose(linear[:, 5], torch.zeros(3)) and torch.allclose(linear[:, :3], torch.ones(3, 3))
    assert torch.allclose(linear[:, 4], 1.0 + torch.tensor([-1.0, 0.0, 1.0]))  # standardised x translation
    beyond = training.select(slice(0, 2))
    beyond.translation = torch.tensor([[-0.5, 0.0, -0.7], [0.5, 0.0, -0.7]])
    clamped, _ = avatar.pose_correction(beyond)
    assert torch.allclose(clamped[:, 4], torch.tensor([0.0, 2.0]))  # the ends of the training range


def test_linear_pose_correction_follows_the_mouth_opening(canonical):
    # The fitted pitch errs with the mouth (MediaPipe's upper-face depth shifts as the jaw
    # opens): frames of one pose whose mouths differ must be able to get different corrections.
    from avatar3d.face import signals, topology as topo

    avatar = _avatar(canonical)
    landmarks = canonical.expand(3, -1, -1).clone()
    for frame, gap in enumerate((0.0, 0.01, 0.02)):
        landmarks[frame, topo.MOUTH_BOTTOM, 1] -= gap
    training = _conditions(landmarks)
    opening = training.mouth_opening()
    assert torch.allclose(opening, torch.from_numpy(signals.mouth_opening(landmarks.numpy())), atol=1e-6)
    assert opening[2] > opening[1] > opening[0]
    avatar.fit_pose_code(training)
    with torch.no_grad():
        avatar.pose_model.weight.zero_()
        avatar.pose_model.weight[1, -1] = 1.0  # pitch follows the standardised mouth opening
        avatar.pose_model.weight[5, -1] = 1.0  # a shift towards the camera may not (it ran away)
    linear, _ = avatar.pose_correction(training)
    assert torch.allclose(linear[:, 1], (opening - opening.mean()) / opening.std(), atol=1e-4)
    assert torch.allclose(linear[:, [0, 2, 3, 4, 5]], torch.zeros(3, 5))


def test_checkpoint_round_trip_renders_the_same_frame(canonical, tmp_path):
    torch.manual_seed(0)
    avatar = _avatar(canonical)
    for parameter in avatar.parameters():  # make every weight matter
        parameter.data.normal_(0, 0.1)
    frame = _conditions(canonical[None].clone())
    before = avatar.render_frame(frame, torch.full((32, 32, 3), 0.5))
    torch.save({"avatar": avatar.payload()}, tmp_path / "checkpoint.pt")
    loaded = Avatar.from_payload(load_checkpoint(tmp_path / "checkpoint.pt")["avatar"])
    after = loaded.render_frame(frame, torch.full((32, 32, 3), 0.5))
    assert before["rgb"].shape == (32, 32, 3)
    assert torch.equal(before["rgb"], after["rgb"]) and torch.equal(before["alpha"], after["alpha"])
    assert (loaded.head.config, loaded.torso.config, loaded.march_config) == (
        avatar.head.config, avatar.torso.config, avatar.march_config)  # nested grids included


def test_corrupt_or_foreign_checkpoints_are_refused_naming_the_path(canonical, tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(BadInputError, match=str(path)):
        load_checkpoint(path)
    payload = _avatar(canonical).payload()
    payload["state"].pop("torso.grid.table")
    with pytest.raises(BadInputError, match="not a usable avatar checkpoint"):
        Avatar.from_payload(payload, path)
    payload = _avatar(canonical).payload()
    payload["head_config"]["grid"]["octaves"] = 3  # a field this version does not know
    with pytest.raises(BadInputError, match="grid.octaves.*train again"):
        Avatar.from_payload(payload, path)


def test_compositing_formula_over_a_background(canonical):
    avatar = _avatar(canonical)
    frame = _conditions(canonical[None].clone())
    pixels = torch.rand(1, 50, 2) * 32
    background = torch.rand(1, 50, 3)
    out = avatar.render_pixels(pixels, frame, background)
    a_h, a_t = out["head_alpha"][:, None], out["torso_alpha"][:, None]
    expected = out["head_rgb"] + (1 - a_h) * (a_t * out["torso_rgb"] + (1 - a_t) * background[0])
    assert torch.allclose(out["rgb"], expected, atol=1e-6)
    assert torch.allclose(out["alpha"], (a_h + (1 - a_h) * a_t)[:, 0], atol=1e-6)


def _lit_avatar(canonical) -> Avatar:
    torch.manual_seed(0)
    avatar = _avatar(canonical)
    for parameter in avatar.parameters():  # make every weight matter
        parameter.data.normal_(0, 0.1)
    with torch.no_grad():
        avatar.light.copy_(LIGHT_PRESETS["studio"] * 0.8)
        avatar.head.density_net[-1].bias[0] = 6.0  # a visible head
    return avatar


def test_passes_recompose_the_frame_and_a_new_light_changes_only_the_shading(canonical):
    avatar = _lit_avatar(canonical)
    frame = _conditions(canonical[None].clone())
    background = torch.rand(32, 32, 3)
    own = avatar.render_frame(frame, background)
    assert float(own["head_alpha"].max()) > 0.5
    recomposed = own["albedo"] * own["shading"] + own["residual"] + (1 - own["alpha"]) * background
    assert torch.allclose(recomposed, own["rgb"], atol=1e-5)
    normal_length = own["normal"].norm(dim=-1)
    assert torch.allclose(normal_length[own["alpha"][..., 0] > 0.01], torch.tensor(1.0), atol=1e-4)
    left = avatar.render_frame(frame, background, light=LIGHT_PRESETS["left"])
    assert torch.allclose(left["albedo"], own["albedo"]) and torch.allclose(left["residual"], own["residual"])
    head, alpha = own["head_alpha"][..., 0], own["alpha"][..., 0]
    seen = (head > 0.999) | ((head < 1e-4) & (alpha > 0.5))  # one surface: its shading is shade(normal)
    expected = shade(own["normal"][seen], LIGHT_PRESETS["left"])
    assert torch.allclose(left["shading"][seen], expected, atol=1e-3)  # the preset, at the albedo's scale
    brighter = avatar.render_frame(frame, background, light=LIGHT_PRESETS["left"], exposure=1.0)
    assert torch.allclose(brighter["shading"][seen], 2 * expected, atol=2e-3)


def test_frame_lights_keep_the_learnt_change_for_trained_frames_only(canonical):
    avatar = _lit_avatar(canonical)
    frames = Conditions(**{**_conditions(canonical.expand(2, -1, -1).clone()).__dict__,
                           "frame_ids": torch.tensor([1, -1])})
    lights = avatar.frame_lights(frames)
    assert torch.allclose(lights[0], avatar.light + avatar.light_change.weight[1].view(9, 3))
    assert torch.allclose(lights[1], avatar.light)
    assert torch.allclose(avatar.frame_lights(frames, exposure=-1.0), lights / 2)
    new = avatar.frame_lights(frames, LIGHT_PRESETS["top"])
    assert torch.allclose(new, LIGHT_PRESETS["top"].expand(2, 9, 3) * front_luminance(avatar.light.detach()))


def test_density_normal_points_out_of_a_ball(canonical):
    avatar = _avatar(canonical)
    centre = torch.tensor([0.0, 0.01, 0.05])
    avatar.head.density = lambda points, counts, codes: torch.exp(-((points - centre).norm(dim=-1) - 0.5) * 200)
    directions = torch.nn.functional.normalize(torch.randn(20, 3), dim=-1)
    normals = avatar._density_normal(centre + 0.5 * directions, [8, 12], codes=None)
    assert torch.allclose(normals, directions, atol=2e-3)


def test_mirror_plane_maps_the_neutral_face_onto_itself(canonical):
    head = _head(canonical)
    mirrored = head.mirrored(canonical)
    assert torch.allclose(head.mirrored(mirrored), canonical, atol=1e-6)
    nearest = torch.cdist(mirrored, canonical).min(1).values
    assert float(nearest.median()) < 0.02 * FACE_WIDTH  # within 2 % of a face width
    assert float((mirrored - canonical).norm(dim=-1).max()) > 0.5 * FACE_WIDTH  # and it does swap sides


def test_albedo_asymmetry_sees_a_face_brighter_on_one_side(canonical):
    avatar = _avatar(canonical)
    codes = avatar.head.frame_codes(_conditions(canonical[None].clone()))
    points = canonical[: topo.NUM_SURFACE][::4] + torch.tensor([0.0, 0.0, 0.03])  # painted in front of the face
    centre, axis = avatar.head.mirror

    def asymmetry_of(field):
        avatar.head.neutral_albedo = lambda neutral, counts, codes: field(neutral)
        return float(avatar._albedo_asymmetry(points, [len(points)], codes))

    assert asymmetry_of(lambda x: torch.full((len(x), 3), 0.4)) == 0
    assert asymmetry_of(lambda x: (((x - centre) @ axis).abs()[:, None] * 10).expand(-1, 3)) < 1e-4  # symmetric
    assert asymmetry_of(lambda x: (((x - centre) @ axis)[:, None] * 10 + 0.5).expand(-1, 3)) > 0.1  # one side brighter
    far = torch.tensor([[0.5, 0.5, 0.0]])  # beside the face: not judged
    assert float(avatar._albedo_asymmetry(far, [1], codes)) == 0


def test_silhouette_normals_turn_away_towards_the_outline():
    rows, cols = np.mgrid[0:64, 0:64]
    disc = (rows - 32) ** 2 + (cols - 32) ** 2 < 20**2
    normals = silhouette_normals(disc)
    assert np.allclose(np.linalg.norm(normals, axis=-1), 1, atol=1e-5)
    assert normals[32, 32, 2] > 0.99 and np.allclose(normals[2, 2], [0, 0, 1])  # centre and outside face the camera
    assert normals[32, 16, 0] < -0.2 and normals[32, 48, 0] > 0.2  # left edge turns left (-x), right edge right
    assert normals[16, 32, 1] > 0.2 and normals[48, 32, 1] < -0.2  # top turns up (+y), bottom down


@pytest.mark.parametrize("density_bias, unseen_weight, left_out", [(6.0, 1e-3, 0.5), (2.0, 0.05, 0.0)])
def test_whole_frames_leave_only_the_unseen_weight_unshaded(canonical, monkeypatch, density_bias, unseen_weight,
                                                            left_out):
    avatar = _lit_avatar(canonical)
    with torch.no_grad():  # dense: the samples behind the surface go unshaded; a fog: its faint samples add up
        avatar.head.density_net[-1].bias[0] = density_bias
    frame = _conditions(canonical[None].clone())
    pixels = frame_pixels(32, 32)[None]
    transform = avatar.camera_to_head(frame)
    origins, directions, counts = avatar.head_rays(pixels, transform)
    codes, lights = avatar.head.frame_codes(frame), avatar.frame_lights(frame, None, 0.0)
    shaded = []
    shading_terms = HeadField.shading_terms
    monkeypatch.setattr(HeadField, "shading_terms", lambda self, neutral, *rest: (
        shaded.append(len(neutral)), shading_terms(self, neutral, *rest))[1])
    with torch.no_grad():
        every = avatar.render_head(origins, directions, counts, codes, transform[0].transpose(1, 2), lights)
        seen = avatar.render_head(origins, directions, counts, codes, transform[0].transpose(1, 2), lights,
                                  unseen_weight=unseen_weight)
    assert shaded[1] < (1 - left_out) * shaded[0]
    for key in ("alpha", "depth"):
        assert torch.equal(seen[key], every[key])
    for key in ("albedo", "normal", "residual"):  # channels within [-1, 1]: off by at most the unseen weight
        assert 0 < (seen[key] - every[key]).abs().max() <= unseen_weight
