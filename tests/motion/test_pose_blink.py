from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d

from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.motion.pose_blink import (
    BLINK_MODES, POSE_MODES, BlinkStats, blink_statistics, blink_track, looped_poses, make_poses,
    pose_from_reference, random_walk_poses, retarget_poses, static_pose,
)

SPREAD = np.array([0.08, 0.05, 0.03, 0.004, 0.003, 0.006])  # radians, then head-space units
CENTRE = np.array([0.05, -0.02, 0.01, 0.0, 0.01, 0.3])


def _train(frames: int = 500, seed: int = 7) -> np.ndarray:
    """(N, 6) smooth head motion standing in for a subject's fitted training poses."""
    raw = gaussian_filter1d(np.random.default_rng(seed).standard_normal((frames, 6)), 6, axis=0)
    return raw / raw.std(0) * SPREAD + CENTRE


def _autocorrelation(x: np.ndarray, lag: int) -> np.ndarray:
    x = x - x.mean(0)
    return (x[:-lag] * x[lag:]).sum(0) / (x * x).sum(0)


# --- head pose ---------------------------------------------------------------------------------


def test_looped_poses_ping_pong_without_jumps():
    train = _train(9)
    out = looped_poses(train, 40)
    assert out.shape == (40, 6) and out.dtype == np.float32
    np.testing.assert_array_equal(out[:9], train.astype(np.float32))
    np.testing.assert_array_equal(out[9], train[7].astype(np.float32))  # mirrored, not wrapped to train[0]
    np.testing.assert_array_equal(out[16], train[0].astype(np.float32))  # back at the start after 2(N-1)
    np.testing.assert_array_equal(out[17], train[1].astype(np.float32))
    largest = np.abs(np.diff(train, axis=0)).max(0)
    assert (np.abs(np.diff(out, axis=0)) <= largest + 1e-6).all()
    np.testing.assert_array_equal(looped_poses(train[:1], 5), np.repeat(train[:1], 5, 0).astype(np.float32))
    assert looped_poses(train, 0).shape == (0, 6)


def test_pose_from_reference_loops_the_reference_moved_onto_the_subject():
    reference = _train(30, seed=3)
    np.testing.assert_array_equal(pose_from_reference(reference, reference, 100), looped_poses(reference, 100))
    np.testing.assert_allclose(pose_from_reference(reference, reference, 10), reference[:10], atol=1e-6)
    moved = retarget_poses(reference, _train(200, seed=4))
    np.testing.assert_array_equal(pose_from_reference(reference, _train(200, seed=4), 10), moved[:10])


def test_retargeting_keeps_the_subjects_framing_and_the_references_motion():
    subject = _train(200, seed=4)
    reference = _train(50, seed=5) * np.array([1, 1, 1, 2, 2, 2]) + np.array([0.2, 0.1, 0, 0.05, -0.02, 0.3])
    out = retarget_poses(reference, subject)  # filmed from twice as far, turned and shifted
    np.testing.assert_allclose(np.median(out, 0), np.median(subject, 0), atol=1e-6)
    deviation = reference - np.median(reference, 0)
    np.testing.assert_allclose(out[:, :3] - np.median(subject, 0)[:3], deviation[:, :3], atol=1e-6)
    ratio = abs(np.median(subject[:, 5])) / abs(np.median(reference[:, 5]))
    assert abs(ratio - 1 / 3) < 0.02  # 0.3 / (2 * 0.3 + 0.3)
    np.testing.assert_allclose(out[:, 3:] - np.median(subject, 0)[3:], deviation[:, 3:] * ratio, atol=1e-6)


def test_static_pose_is_a_real_training_row_held_still():
    train = _train(101)
    out = static_pose(train, 12)
    assert out.shape == (12, 6)
    assert (out == out[0]).all()
    assert (train.astype(np.float32) == out[0]).all(1).any()
    assert not np.allclose(out[0], np.median(train, 0).astype(np.float32))  # not the synthetic median
    # Rows ordered alike in every dimension: the middle row is the per-dimension median.
    ordered = CENTRE + np.arange(5)[:, None] * SPREAD
    shuffled = ordered[[3, 0, 4, 2, 1]]
    np.testing.assert_array_equal(static_pose(shuffled, 3)[0], ordered[2].astype(np.float32))


def test_random_walk_is_seeded_bounded_and_step_limited():
    train = _train()
    first = random_walk_poses(train, 1000, 25.0, seed=1)
    assert first.shape == (1000, 6) and first.dtype == np.float32
    np.testing.assert_array_equal(first, random_walk_poses(train, 1000, 25.0, seed=1))
    assert not np.allclose(first, random_walk_poses(train, 1000, 25.0, seed=2))
    low, high = np.quantile(train, [0.02, 0.98], axis=0)
    assert (first >= low - 1e-6).all() and (first <= high + 1e-6).all()
    limit = np.percentile(np.abs(np.diff(train, axis=0)), 95, axis=0)
    assert (np.abs(np.diff(first, axis=0)) <= limit + 1e-6).all()


def test_random_walk_moves_like_the_subject_at_any_frame_rate():
    train = _train()
    seconds = 240
    at25 = random_walk_poses(train, 25 * seconds, 25.0, seed=5)
    at50 = random_walk_poses(train, 50 * seconds, 50.0, seed=5)
    ratio = at25.std(0) / train.std(0)
    assert ((ratio > 0.5) & (ratio < 2.0)).all(), ratio
    # One-second autocorrelation, averaged over the six dimensions: the OU's exp(-1 / 1.5) at both rates.
    lag25, lag50 = _autocorrelation(at25, 25).mean(), _autocorrelation(at50, 50).mean()
    assert abs(lag25 - lag50) < 0.2
    assert abs(lag25 - np.exp(-1 / 1.5)) < 0.15 and abs(lag50 - np.exp(-1 / 1.5)) < 0.15


def test_random_walk_moves_more_when_loud():
    train = _train()
    energy = np.r_[np.zeros(1500), np.ones(1500)]
    out = random_walk_poses(train, 3000, 25.0, seed=3, audio_energy=energy)
    quiet, loud = np.abs(np.diff(out[:1500], axis=0)).mean(), np.abs(np.diff(out[1500:], axis=0)).mean()
    assert loud > 1.5 * quiet
    with pytest.raises(BadInputError, match="audio energy"):
        random_walk_poses(train, 3000, 25.0, audio_energy=energy[:100])


def test_make_poses_dispatches_each_mode():
    train = _train(50)
    np.testing.assert_array_equal(make_poses("train", train, 80, 25.0), looped_poses(train, 80))
    np.testing.assert_array_equal(make_poses("static", train, 80, 25.0), static_pose(train, 80))
    np.testing.assert_array_equal(make_poses("generated", train, 80, 25.0, seed=4),
                                  random_walk_poses(train, 80, 25.0, seed=4))


# --- blinks ------------------------------------------------------------------------------------


def _eye_track(fps: int = 25, seconds: int = 20) -> np.ndarray:
    """Open eye near 1 with five 4-frame blinks whose minima are 0.05, 0.1, 0.1, 0.15, 0.2."""
    rng = np.random.default_rng(0)
    track = 1.0 + 0.03 * rng.standard_normal(fps * seconds)
    for start, deepest in zip([40, 140, 250, 330, 450], [0.1, 0.05, 0.15, 0.1, 0.2]):
        track[start:start + 4] = [0.3, deepest, deepest + 0.02, 0.3]
    return track


def test_blink_statistics_recovers_known_blinks():
    stats = blink_statistics(_eye_track(), 25.0)
    assert stats.rate_per_second == pytest.approx(0.25)
    assert stats.mean_duration_s == pytest.approx(0.16)
    assert stats.closed_level == pytest.approx(0.1)
    assert stats.open_level == pytest.approx(1.0, abs=0.01)
    never = blink_statistics(np.full(100, 0.9), 25.0)
    assert never.rate_per_second == 0 and never.closed_level == 0 and never.open_level == pytest.approx(0.9)


def test_blink_track_none_and_periodic():
    stats = BlinkStats(rate_per_second=0.5, mean_duration_s=0.2, open_level=0.9, closed_level=0.1)
    none = blink_track(300, 25.0, stats, mode="none")
    assert none.shape == (300,) and none.dtype == np.float32 and (none == np.float32(0.9)).all()
    for fps in (25, 30):
        track = blink_track(13 * fps, float(fps), stats, mode="periodic")
        # The deepest frames are exactly at 2 s, 6 s and 10 s; elsewhere the eye is more open.
        np.testing.assert_array_equal(np.flatnonzero(track == np.float32(0.1)), [2 * fps, 6 * fps, 10 * fps])
        assert track[0] == np.float32(0.9) and track[4 * fps] == np.float32(0.9)
    assert blink_track(10, 25.0, None, mode="periodic").min() == 1.0  # shorter than 2 s: no blink yet


def test_blink_track_auto_reproduces_the_subject():
    stats = BlinkStats(rate_per_second=0.3, mean_duration_s=0.2, open_level=0.9, closed_level=0.1)
    track = blink_track(25 * 600, 25.0, stats, mode="auto", seed=2)
    np.testing.assert_array_equal(track, blink_track(25 * 600, 25.0, stats, mode="auto", seed=2))
    assert track.min() == np.float32(0.1) and track.max() == np.float32(0.9)
    measured = blink_statistics(track, 25.0, closed_below=0.5)  # the midpoint of the two levels
    assert measured.rate_per_second == pytest.approx(0.3, rel=0.2)
    assert measured.mean_duration_s == pytest.approx(0.2, abs=0.041)
    # Closed within two frames: a short blink still shows.
    assert blink_statistics(blink_track(2500, 25.0, BlinkStats(0.3, 0.01, 1.0, 0.0)), 25.0).mean_duration_s > 0
    # A subject who never blinked falls back to the human rate of 0.25 per second.
    never = BlinkStats(rate_per_second=0.0, mean_duration_s=0.15, open_level=1.0, closed_level=0.0)
    fallback = blink_statistics(blink_track(25 * 600, 25.0, never, seed=3), 25.0, closed_below=0.5)
    assert fallback.rate_per_second == pytest.approx(0.25, rel=0.2)


# --- errors ------------------------------------------------------------------------------------


def test_unknown_modes_are_argument_errors_listing_the_valid_ones():
    with pytest.raises(BadArgumentError, match=", ".join(POSE_MODES)):
        make_poses("wobble", _train(20), 10, 25.0)
    with pytest.raises(BadArgumentError, match=", ".join(BLINK_MODES)):
        blink_track(10, 25.0, None, mode="wink")


@pytest.mark.parametrize("train", [np.zeros((0, 6)), np.zeros((10, 5)), np.zeros(6),
                                   np.r_[np.zeros((3, 6)), np.full((1, 6), np.nan)]])
def test_bad_training_poses_are_input_errors(train):
    for mode in POSE_MODES:
        with pytest.raises(BadInputError, match="train poses"):
            make_poses(mode, train, 10, 25.0)
    with pytest.raises(BadInputError, match="reference poses"):
        pose_from_reference(train, _train(), 10)


def test_bad_eye_opening_is_an_input_error():
    with pytest.raises(BadInputError, match="eye opening"):
        blink_statistics(np.zeros(0), 25.0)
    with pytest.raises(BadInputError, match="eye opening"):
        blink_statistics(np.array([1.0, np.inf]), 25.0)
