"""The virtual actor's mesh, rig and renderer, checked without writing a video."""

import numpy as np
import pytest
import torch

from avatar3d.face import signals
from avatar3d.face import topology as topo
from avatar3d.camera import project, rotation_matrix
from avatar3d.render.sh import LIGHT_PRESETS, shade
from avatar3d.rig import expression
from avatar3d.rig.actor import FACE_WIDTH, build_actor, intrinsics
from avatar3d.synth.scene import HEAD, TORSO, Pose, load_background, render_frame
from avatar3d.rig.speech import phoneme_class, synthesize
from avatar3d.rig.visemes import viseme_track


@pytest.fixture(scope="module")
def actor():
    return build_actor()


def _rest_pose(actor, yaw=0.0):
    identity = rotation_matrix(0.0, 0.0, 0.0)
    return Pose(rotation_matrix(yaw, 0.0, 0.0), actor.rest_translation, identity, actor.rest_translation)


def test_face_has_head_proportions(actor):
    rest = actor.rig.rest
    width = np.linalg.norm(rest[topo.FACE_SIDES[0], :2] - rest[topo.FACE_SIDES[1], :2])
    height = rest[topo.FOREHEAD, 1] - rest[topo.CHIN, 1]
    assert abs(width - FACE_WIDTH) < 0.01
    assert 1.0 < height / width < 1.6
    assert rest[topo.NOSE_TIP, 2] > rest[list(topo.FACE_SIDES), 2].max()  # the nose points at the camera


def test_rest_render_projects_landmarks_onto_their_photo_texture(actor):
    """At rest every landmark lands where the texture says it is, so the photo is reproduced."""
    K = intrinsics(256)
    pixels = project(actor.vertices[: topo.NUM_LANDMARKS] + actor.rest_translation, K)[:, :2]
    assert pixels.min() > 0 and pixels.max() < 256
    face_px = torch.linalg.norm(pixels[topo.FACE_SIDES[0]] - pixels[topo.FACE_SIDES[1]])
    assert 0.25 < face_px / 256 < 0.45  # head-and-shoulders framing


def test_render_is_albedo_times_sh_shading_inside_the_person(actor):
    light = LIGHT_PRESETS["left"]
    background = load_background("#000000", 128)
    landmarks = torch.as_tensor(actor.rig.rest, dtype=torch.float32)
    frame = render_frame(actor, landmarks, _rest_pose(actor), light, background, supersample=1)
    inside = frame.alpha[..., 0] > 0.999
    assert inside.float().mean() > 0.3
    expected = frame.albedo * shade(frame.normal, light)
    torch.testing.assert_close(frame.rgb[inside], expected[inside].clamp(0, 1), atol=1e-5, rtol=0)


def test_labels_put_head_above_torso_and_background_around(actor):
    frame = render_frame(actor, torch.as_tensor(actor.rig.rest, dtype=torch.float32), _rest_pose(actor),
                         LIGHT_PRESETS["neutral"], load_background("coffee", 128), supersample=1)
    label = frame.label[..., 0]
    rows = torch.arange(128.0)[:, None].expand(128, 128)
    assert rows[label == HEAD].mean() < rows[label == TORSO].mean()
    assert (label[0, 0] == 0) and (label[-1, 64] == TORSO)
    normals = frame.normal[frame.alpha[..., 0] > 0.99]
    torch.testing.assert_close(normals.norm(dim=-1), torch.ones(len(normals)), atol=1e-4, rtol=0)
    assert (normals[:, 2] > 0).float().mean() > 0.95  # the visible surface faces the camera


def test_head_turn_moves_the_face_not_the_shoulders(actor):
    background = load_background("#000000", 128)
    landmarks = torch.as_tensor(actor.rig.rest, dtype=torch.float32)
    still = render_frame(actor, landmarks, _rest_pose(actor), LIGHT_PRESETS["neutral"], background, 1)
    turned = render_frame(actor, landmarks, _rest_pose(actor, yaw=np.radians(4)), LIGHT_PRESETS["neutral"],
                          background, 1)
    change = (still.rgb - turned.rgb).abs().sum(-1)
    assert change[20:70].mean() > 5 * change[110:].mean()


def _mouth_at(actor, visemes, blink=0.0):
    return float(signals.mouth_opening(expression.apply(actor.rig, visemes, blink)))


def test_mouth_opens_on_vowels_and_closes_on_bilabials(actor):
    speech = synthesize("Papa bought a map by the pool, and Bob ate a mango.")
    centres = np.array([(p.start + p.end) / 2 for p in speech.phonemes]) / speech.sample_rate
    visemes = viseme_track(speech.phonemes, speech.sample_rate, centres)
    opening = np.array([_mouth_at(actor, v) for v in visemes])
    classes = np.array([phoneme_class(p.label) for p in speech.phonemes])
    bilabial, vowel = opening[classes == "bilabial"], opening[np.isin(classes, ["open_vowel", "mid_vowel"])]
    assert len(bilabial) >= 6 and len(vowel) >= 6
    assert bilabial.max() < 0.01  # lips together: under 1.5 mm on a 15 cm face
    assert np.median(vowel) > 0.06
    assert np.median(vowel) > 10 * np.median(bilabial)


def test_blink_closes_the_eyes_and_jaw_opening_is_monotonic(actor):
    open_eyes = signals.eye_opening(expression.apply(actor.rig, np.zeros(5), 0.0))
    shut = signals.eye_opening(expression.apply(actor.rig, np.zeros(5), 1.0))
    assert shut < 0.2 * open_eyes
    jaw = [_mouth_at(actor, np.array([j, 0, 0, 0, 0])) for j in np.linspace(0, 1, 6)]
    assert np.all(np.diff(jaw) > 0)
