"""Training the Gaussian head backend, and everything downstream taking its runs."""

import shutil

import numpy as np
import pytest
import torch

from avatar3d import config as config_io
from avatar3d.cli import main
from avatar3d.errors import BadArgumentError, BadInputError
from avatar3d.export.gaussians import read_ply
from avatar3d.files import FINISHED
from avatar3d.render.avatar import load_avatar
from avatar3d.render.conditions import subject_conditions
from avatar3d.render.config import RenderFramesConfig
from avatar3d.render.sequence import render_frames
from avatar3d.runtime import console
from avatar3d.train.config import RenderEvalConfig, RenderTrainConfig
from avatar3d.train.render import RenderTrainer
from avatar3d.subject import LABEL_HEAD, Subject
from avatar3d.train.render_eval import evaluate_render, held_out, held_out_frames

from conftest import TINY_GAUSSIANS, write_stereo_speech

CPU = torch.device("cpu")


def _config(subject_dir, run, **overrides) -> RenderTrainConfig:
    return config_io.build(RenderTrainConfig, TINY_GAUSSIANS, {"subject": subject_dir, "run": run, **overrides})


def test_head_loss_falls_and_densification_grows_the_pulled_gaussians(subject_dir, tmp_path):
    torch.manual_seed(0)
    trainer = RenderTrainer(_config(subject_dir, tmp_path / "run", head_steps=40), CPU)
    start = len(trainer.avatar.head)
    losses = []
    for step in range(40):
        trainer.step = step
        logs = trainer._step(step / 40)
        losses.append(logs["head/photometric"])
    assert np.mean(losses[-8:]) < 0.6 * np.mean(losses[:4])
    assert logs["head/gaussians"] == len(trainer.avatar.head) != start  # densified and pruned at steps 10, 20 ...
    # The optimiser's moments kept pace with the count.
    assert trainer.optimizer.state[trainer.avatar.head.means]["exp_avg"].shape == trainer.avatar.head.means.shape


def test_finished_run_is_a_gaussian_avatar_that_eval_render_and_export_take(gaussian_run, subject_dir, tmp_path, capsys):
    avatar = load_avatar(gaussian_run)
    assert avatar.backend == "gaussians" and avatar.grid is None
    result = evaluate_render(RenderEvalConfig(subject=subject_dir, run=gaussian_run, out=tmp_path / "m.json",
                                              max_frames=2, video=False, lmd=False), CPU)
    assert 10 < result["psnr"] < 60 and result["frames"] == 2
    # 40 steps already improved the held-out head on its seeds a lot.
    subject = Subject.load(subject_dir)
    index = int(held_out_frames(subject, 1)[0])
    frame = held_out(subject_conditions(subject).select(index))
    plate = torch.from_numpy(subject.background()).float() / 255
    real, is_head = subject.frame(index).astype(np.float32) / 255, subject.labels(index) == LABEL_HEAD
    seeded = RenderTrainer(_config(subject_dir, tmp_path / "seeded"), CPU).avatar.eval()
    error = {name: float(((model.render_frame(frame, plate)["rgb"].numpy() - real) ** 2)[is_head].mean())
             for name, model in (("seeded", seeded), ("trained", avatar))}
    assert error["trained"] < 0.7 * error["seeded"], error
    frames = render_frames(RenderFramesConfig(subject=subject_dir, out=tmp_path / "orbit", frames="0:2",
                                              run=gaussian_run, orbit=20, light="left"), CPU)
    assert len(list(frames.glob("*.png"))) == 2
    out = tmp_path / "head.ply"
    assert main(["export", "gaussians", str(subject_dir), "--run", str(gaussian_run), "--out", str(out)]) == 0
    ply = read_ply(out)
    assert len(ply["x"]) == len(avatar.head)
    assert np.allclose(ply["x"], avatar.head.means[:, 0].detach().numpy(), atol=0.02)  # posed near neutral
    capsys.readouterr()
    assert main(["export", "mesh", str(subject_dir), "--run", str(gaussian_run), "--out", str(tmp_path / "h.obj")]) == 2
    error = capsys.readouterr().err
    assert "gaussians run" in error and "export gaussians" in error and len(error.strip().splitlines()) == 1
    assert not (tmp_path / "h.obj").exists()


def test_drive_takes_a_gaussian_run(subject_dir, clip_dir, gaussian_run, model_path, tmp_path):
    speech = write_stereo_speech(clip_dir / "audio.wav", tmp_path / "speech.wav", seconds=0.5)
    out = tmp_path / "line.mp4"
    assert main(["--quiet", "drive", str(subject_dir), "--audio", str(speech), "--run", str(gaussian_run), "--motion",
                 str(model_path), "--out", str(out), "--passes", "albedo,normal,shading", "--light", "left"]) == 0
    assert out.stat().st_size > 0
    for name in ("albedo", "normal", "shading"):
        assert list((tmp_path / "line-passes" / name).glob("*.png"))


def test_a_run_resumed_with_the_other_backend_or_a_nerf_prior_is_refused(gaussian_run, subject_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(gaussian_run, copy)
    (copy / FINISHED).unlink()
    with pytest.raises(BadInputError, match="gaussians run: resume it with --backend gaussians"):
        RenderTrainer(config_io.build(RenderTrainConfig, {"subject": subject_dir, "run": copy}), CPU)
    with pytest.raises(BadArgumentError, match="NeRF prior"):
        _config(subject_dir, tmp_path / "other", depth_weight=0.1)
    with pytest.raises(BadArgumentError, match="choose nerf or gaussians"):
        _config(subject_dir, tmp_path / "other", backend="splats")


def test_seeds_beyond_the_cap_are_dropped_with_a_warning(subject_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(console, "quiet", False)  # an earlier `main(["--quiet", ...])` may have silenced it
    trainer = RenderTrainer(_config(subject_dir, tmp_path / "run", **{"gaussians.max_count": 1000}), CPU)
    assert len(trainer.avatar.head) == 1000
    assert "exceed gaussians.max_count (1000)" in capsys.readouterr().err
