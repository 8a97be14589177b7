"""``avatar3d eval relight``: the gain fit, the truth clip checks and the report."""

import json

import numpy as np
import pytest

from avatar3d.cli import main
from avatar3d.synth.clip import make_clip
from avatar3d.synth.config import SynthConfig
from avatar3d.train.relight_eval import fit_gain


def test_fit_gain_recovers_the_scale_between_albedo_and_light():
    rng = np.random.default_rng(0)
    colour = [rng.random((5, 6, 3)).astype(np.float32) for _ in range(3)]
    behind = [rng.random((5, 6, 3)).astype(np.float32) * 0.2 for _ in range(3)]
    gain = np.array([0.7, 1.3, 2.0], np.float32)
    truth = [gain * c + b for c, b in zip(colour, behind)]
    assert np.allclose(fit_gain(colour, behind, truth), gain, atol=1e-5)


@pytest.fixture(scope="module")
def left_clip(tmp_path_factory):
    """The session clip's settings under the "left" light, with albedo and normal passes."""
    out = tmp_path_factory.mktemp("left")
    make_clip(SynthConfig(out=out, seconds=4, resolution=256, seed=3, supersample=1, light="left",
                          passes="albedo,normal"))
    return out


def test_eval_relight_scores_the_relit_and_the_unrelit_frames(subject_dir, trained_run, left_clip, tmp_path, capsys):
    out = tmp_path / "relight.json"
    assert main(["eval", "relight", str(subject_dir), "--truth", str(left_clip), "--run", str(trained_run),
                 "--max-frames", "2", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["frames"] == 2
    (name, scores), = result["lights"].items()
    assert name.startswith("left")
    for key in ("psnr_face", "psnr", "baseline_psnr_face", "baseline_psnr"):
        assert np.isfinite(scores[key]) and scores[key] > 5, key
    assert len(scores["gain"]) == 3 and all(g > 0 for g in scores["gain"])
    assert np.isfinite(result["albedo_psnr_face"]) and 0 <= result["normal_error_median_deg"] <= 180
    captured = capsys.readouterr()
    assert "relit face" in captured.out + captured.err


def test_truth_clips_that_are_not_the_subjects_clip_are_refused(subject_dir, trained_run, tmp_path, capsys):
    other_seed = tmp_path / "seed4"
    make_clip(SynthConfig(out=other_seed, seconds=1, resolution=64, seed=4, supersample=1, light="left"))
    for truth, words in ((other_seed, "seed is 4"), (tmp_path / "nowhere", "no config.yaml")):
        code = main(["eval", "relight", str(subject_dir), "--truth", str(truth), "--run", str(trained_run)])
        captured = capsys.readouterr()
        message = captured.out + captured.err
        assert code == 2 and words in message and "Traceback" not in message
        assert not (trained_run / "relight.json").exists()
