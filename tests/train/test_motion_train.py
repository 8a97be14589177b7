"""Motion training on a tiny synthetic corpus with tiny networks."""

import json

import numpy as np
import pytest
import torch

from avatar3d.cli import main
from avatar3d.files import CHECKPOINT, FINISHED, load_checkpoint
from avatar3d.motion.model import MotionModel
from avatar3d.train.config import MotionTrainConfig
from avatar3d.train.motion import MODEL, MotionTrainer

TINY = ["--utterances", "6", "--heldout", "2", "--sync-steps", "20", "--vae-steps", "20", "--crop-frames", "40",
        "--width", "16", "--batch", "4", "--checkpoint-every", "5"]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory):
    return tmp_path_factory.mktemp("corpus")


def _args(corpus_root, run) -> list[str]:
    return ["train", "motion", *TINY, "--corpus-root", str(corpus_root), "--run", str(run)]


def test_train_writes_a_loadable_model_and_heldout_metrics(corpus_root, tmp_path):
    assert main(_args(corpus_root, tmp_path / "run")) == 0
    model = MotionModel.load(tmp_path / "run" / MODEL)
    assert model.basis.size == 32 and model.vae.config.width == 16
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["utterances"] == 2 and metrics["frames"] > 50
    assert -1 <= metrics["mouth_corr"] <= 1 and 0 <= metrics["sync_rank"] <= 1
    assert (tmp_path / "run" / FINISHED).exists()


def test_vae_and_closure_head_losses_fall(corpus_root, tmp_path):
    torch.manual_seed(0)
    cfg = MotionTrainConfig(utterances=6, heldout=2, crop_frames=40, width=32, batch=4, corpus_root=corpus_root,
                            run=tmp_path / "run", sync_weight=0.0, feature_dropout="")  # no dropout: a clean curve
    trainer = MotionTrainer(cfg)
    trainer.stage = "vae"
    trainer.optimizer = trainer._stage_optimizer()
    logs = [trainer._vae_step(0.1) for _ in range(80)]
    losses, head = [log["vae/reconstruction"] for log in logs], [log["vae/closure_head"] for log in logs]
    assert np.mean(losses[-10:]) < 0.5 * np.mean(losses[:10])
    assert np.mean(head[-10:]) < 0.5 * np.mean(head[:10])


def test_interrupted_training_resumes_where_it_stopped(corpus_root, tmp_path, monkeypatch):
    real_step = MotionTrainer._vae_step

    def interrupt_at_12(self, progress):
        if self.step == 12:
            raise KeyboardInterrupt
        return real_step(self, progress)

    monkeypatch.setattr(MotionTrainer, "_vae_step", interrupt_at_12)
    assert main(_args(corpus_root, tmp_path / "run")) == 130  # Ctrl-C
    assert not (tmp_path / "run" / FINISHED).exists()
    saved = load_checkpoint(tmp_path / "run" / CHECKPOINT, "test")
    assert (saved["stage"], saved["step"]) == ("vae", 12)
    monkeypatch.setattr(MotionTrainer, "_vae_step", real_step)
    assert main(_args(corpus_root, tmp_path / "run")) == 0
    assert load_checkpoint(tmp_path / "run" / CHECKPOINT, "test")["step"] == 20


def test_shard_makes_only_its_share(tmp_path):
    assert main(["train", "motion", "--utterances", "6", "--shard", "1/3", "--corpus-root", str(tmp_path)]) == 0
    [folder] = tmp_path.glob("synthetic-*")
    assert sorted(p.name for p in folder.glob("*.npz")) == ["000001.npz", "000004.npz"]


def test_bad_arguments_are_one_line_exit_2(tmp_path, capsys):
    assert main(["train", "motion", "--shard", "3/3"]) == 2
    assert main(["train", "motion", "--corpus", str(tmp_path), "--run", str(tmp_path / "r")]) == 2
    assert main(["train", "motion", "--feature-dropout", "mel=0.5"]) == 2
    assert main(["train", "motion", "--feature-dropout", "lips:0.5"]) == 2
    assert main(["train", "motion", "--voices", "espeak,klingon"]) == 2
    (tmp_path / "broken.pt").write_bytes(b"junk")
    with pytest.raises(Exception, match="broken.pt"):
        MotionModel.load(tmp_path / "broken.pt")
    err = capsys.readouterr().err
    assert "--shard" in err and str(tmp_path) in err and "Traceback" not in err
    assert "--feature-dropout 'mel=0.5'" in err and "--voices" in err
