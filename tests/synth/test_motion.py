import numpy as np

from avatar3d.synth import motion


def test_head_sway_is_small_and_smooth():
    angles, shift = motion.head_sway(1000, 25, np.random.default_rng(0))
    assert np.all(np.abs(np.degrees(angles)) <= np.array(motion.MAX_HEAD_DEGREES) + 1e-4)
    assert np.abs(np.degrees(angles[:, 0])).max() > 1.0  # it does move
    assert np.abs(np.diff(np.degrees(angles), axis=0)).max() < 0.3  # degrees per frame
    assert np.abs(shift).max() <= motion.MAX_HEAD_SHIFT + 1e-6


def test_torso_follows_head_yaw_with_a_lag():
    angles, _ = motion.head_sway(500, 25, np.random.default_rng(1))
    torso = motion.torso_follow(angles, 25)
    lag = round(motion.TORSO_LAG_SECONDS * 25)
    np.testing.assert_allclose(torso[lag:, 0], motion.TORSO_FOLLOW * angles[:-lag, 0], rtol=1e-5)
    assert np.all(torso[:, 1] == 0)


def test_blinks_come_at_natural_intervals():
    closure = motion.blink_track(25 * 120, 25, np.random.default_rng(2))
    shut = closure > 0.5
    starts = np.flatnonzero(shut[1:] & ~shut[:-1]) / 25
    assert 20 <= len(starts) <= 60  # 10-30 blinks a minute
    assert np.diff(starts).min() >= 1.2
    assert closure.max() > 0.95 and closure.min() == 0.0
