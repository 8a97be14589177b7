"""Expression basis and the motion VAE."""

import numpy as np
import pytest
import torch

from avatar3d.errors import BadInputError
from avatar3d.face import signals
from avatar3d.motion.basis import SPEAKER_DIMS, ExpressionBasis, displacements, to_landmarks
from avatar3d.motion.features import AUDIO_DIMS
from avatar3d.motion.vae import LATENT_STRIDE, MotionVAE, VAEConfig, kl_divergence


def _low_rank(rng, frames: int, rank: int) -> np.ndarray:
    """(frames, 478, 3) displacements spanned by ``rank`` random directions plus a mean."""
    directions = rng.normal(size=(rank, 478 * 3))
    weights = rng.normal(size=(frames, rank))
    return (0.01 + weights @ directions * 0.01).reshape(frames, 478, 3)


def test_displacements_are_in_face_widths_and_invert(truth):
    neutral = truth["rest_landmarks"].astype(np.float64)
    moved = neutral + np.random.default_rng(0).normal(scale=0.002, size=(4, 478, 3))
    d = displacements(moved, neutral)
    assert np.allclose(displacements(moved * 2, neutral * 2), d)  # the same expression on a face twice the size
    assert np.allclose(to_landmarks(d, neutral), moved)
    assert np.isclose(np.abs(d).max(), np.abs(moved - neutral).max() / signals.face_width(neutral))


def test_basis_keeps_a_low_rank_expression_space_exactly():
    rng = np.random.default_rng(0)
    data = _low_rank(rng, 200, 5)
    basis = ExpressionBasis.fit(data, 8)
    assert basis.explained(data) > 0.9999
    assert np.allclose(basis.decode(basis.encode(data)), data, atol=1e-5)
    assert np.allclose(basis.components @ basis.components.T, np.eye(8), atol=1e-5)
    assert (np.diff(basis.variance) <= 1e-9).all()  # largest variance first
    assert ExpressionBasis.fit(data, 3).explained(data) < 0.999  # three directions cannot hold five
    loaded = ExpressionBasis.from_state(basis.state())
    assert np.array_equal(loaded.encode(data), basis.encode(data))


def test_basis_refuses_too_little_or_foreign_data():
    with pytest.raises(BadInputError):
        ExpressionBasis.fit(np.zeros((1, 478, 3)), 4)
    with pytest.raises(BadInputError):
        ExpressionBasis.from_state({"mean": np.zeros(30), "components": np.zeros((2, 30)), "variance": np.ones(2)})


def test_vae_shapes_for_any_length_and_kl():
    torch.manual_seed(0)
    vae = MotionVAE(VAEConfig(codes=6, width=16, latent=4, closure=True))
    for frames in (1, 7, 48):
        codes, mean, log_var, closure = vae(torch.randn(2, 2 * frames, AUDIO_DIMS), torch.randn(2, frames, 6),
                                            torch.randn(2, SPEAKER_DIMS))
        assert codes.shape == (2, frames, 6) and closure.shape == (2, frames)
        assert mean.shape == (2, 4, -(-frames // LATENT_STRIDE))
        assert vae.closed_probability(torch.randn(2 * frames, AUDIO_DIMS)).shape == (frames,)
    assert MotionVAE(VAEConfig(codes=6, width=16, latent=4)).closed_probability(torch.randn(8, AUDIO_DIMS)) is None
    assert float(kl_divergence(torch.zeros(3, 4), torch.zeros(3, 4))) == 0.0
    assert float(kl_divergence(torch.ones(3, 4), torch.zeros(3, 4))) == pytest.approx(0.5)


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_chunked_generation_equals_one_pass(temperature):
    torch.manual_seed(0)
    vae = MotionVAE(VAEConfig(codes=5, width=16, latent=4, closure=True)).eval()
    audio = torch.randn(2 * 203, AUDIO_DIMS)
    speaker = torch.randn(SPEAKER_DIMS)
    whole = vae.generate(audio, speaker, temperature, seed=3, chunk_frames=1000)
    chunked = vae.generate(audio, speaker, temperature, seed=3, chunk_frames=37)
    assert whole.shape == (203, 5)
    assert torch.allclose(whole, chunked, atol=1e-5)
    assert torch.allclose(vae.closed_probability(audio), vae.closed_probability(audio, chunk_frames=37), atol=1e-6)
    if temperature:
        assert not torch.allclose(whole, vae.generate(audio, speaker, temperature, seed=4))  # the latent matters
    assert not torch.allclose(whole, vae.generate(audio, speaker + 1, temperature, seed=3))  # so does the face
    assert vae.generate(audio[:0], speaker).shape == (0, 5)


def test_vae_hears_only_its_kinds_of_feature_and_keeps_them_through_a_checkpoint():
    from avatar3d.motion.features import FEATURE_GROUPS

    torch.manual_seed(0)
    vae = MotionVAE(VAEConfig(codes=6, width=16, latent=4, features=("phones", "energy"))).eval()
    audio, speaker = torch.randn(40, AUDIO_DIMS), torch.randn(SPEAKER_DIMS)
    other = audio.clone()
    other[:, list(FEATURE_GROUPS["mel"]) + list(FEATURE_GROUPS["pitch"])] = torch.randn(40, 82)
    assert torch.equal(vae.generate(audio, speaker), vae.generate(other, speaker))  # mel and pitch unheard
    other[:, list(FEATURE_GROUPS["phones"])[:3]] += 1.0
    assert not torch.equal(vae.generate(audio, speaker), vae.generate(other, speaker))
    again = MotionVAE.from_state(vae.state()).eval()
    assert again.config.features == ("phones", "energy")
    assert torch.equal(again.generate(audio, speaker), vae.generate(audio, speaker))


def test_lip_press_takes_the_larger_vote_and_gates_the_recogniser(monkeypatch):
    from avatar3d.motion import model as motion_model

    vae = MotionVAE(VAEConfig(codes=6, width=16, latent=4, closure=True))
    model = motion_model.MotionModel(None, vae, None)
    # per frame: (closure head's probability, recogniser's P(p, b or m))
    votes = [(0.9, 0.0), (0.45, 0.0), (0.0, 0.95), (0.05, 0.95), (0.05, 0.75), (0.05, 0.3), (0.25, 0.0)]
    head = torch.tensor([h for h, _ in votes])
    monkeypatch.setattr(vae, "closed_probability", lambda audio: head)
    features = np.zeros((2 * len(votes), AUDIO_DIMS), np.float32)
    for frame, (_, bilabial) in enumerate(votes):
        features[2 * frame + 1, motion_model.BILABIAL_COLUMNS[2]] = bilabial  # M, in the frame's second row
    press = model.lip_press(features)
    assert np.allclose(press, [1.0, 0.5, 0.0, 1.0, 0.5, 0.0, 0.0], atol=1e-5)
