import subprocess
import sys

import pytest
import torch

from avatar3d import config as config_io
from avatar3d.cli import main
from avatar3d.errors import BadArgumentError
from avatar3d.synth.config import SynthConfig


def test_help_lists_working_commands_and_field_docstrings(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    top = capsys.readouterr().out
    assert all(name in top for name in ("info", "synth", "demo"))
    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "Speaking rate, 80-450. (default: 160)" in text
    assert "--words-per-minute" in text and "key=value" in text


def test_info_reports_versions_and_backends(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "mediapipe" in out and "backend torch" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_cuda_without_gpu_is_a_user_error(capsys):
    assert main(["--device", "cuda", "info"]) == 2
    assert "no CUDA GPU" in capsys.readouterr().err


def test_config_layers_file_then_flags_then_overrides(tmp_path):
    settings = tmp_path / "synth.yaml"
    settings.write_text("seconds: 3\nvoice: en-gb\nresolution: 128\n")
    cfg = config_io.build(SynthConfig, config_io.load_yaml(settings), {"out": "x", "voice": "en-sc"},
                          config_io.parse_overrides(["resolution=96", "seed=4"]))
    assert (cfg.seconds, cfg.voice, cfg.resolution, cfg.seed) == (3.0, "en-sc", 96, 4)
    with pytest.raises(BadArgumentError, match="not a valid int"):
        config_io.build(SynthConfig, {"out": "x", "seed": "four"})
    with pytest.raises(BadArgumentError, match="--out is required"):
        config_io.build(SynthConfig, {})


def test_console_script_exits_2_without_traceback(tmp_path):
    result = subprocess.run([sys.executable, "-m", "avatar3d.cli", "synth", "--out", str(tmp_path),
                             "--voice", "nope"], capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and "voice" in result.stderr


def test_help_names_every_voice_and_light_preset(capsys):
    from avatar3d.render.sh import LIGHT_PRESETS
    from avatar3d.rig.speech import VOICES

    with pytest.raises(SystemExit):
        main(["synth", "--help"])
    text = capsys.readouterr().out
    assert all(voice in text for voice in VOICES) and all(preset in text for preset in LIGHT_PRESETS)


def test_demo_runs_every_stage_that_exists(tmp_path):
    out = tmp_path / "demo"
    assert main(["--quiet", "demo", "--out", str(out), "--seconds", "5.2", "--resolution", "192",
                 "--train-minutes", "0.15"]) == 0
    assert (out / "actor" / "video.mp4").is_file() and (out / "actor" / "truth.npz").is_file()
    assert (out / "subject" / "preview.mp4").is_file()
    manifest = __import__("json").loads((out / "subject" / "subject.json").read_text())
    assert manifest["stats"]["landmarks.detected_fraction"] >= 0.99
    assert (out / "render" / "finished").exists() and (out / "render" / "eval.mp4").is_file()
    metrics = __import__("json").loads((out / "render" / "metrics.json").read_text())
    assert metrics["frames"] == manifest["split"]["val"][1] - manifest["split"]["val"][0]


def test_demo_discards_an_avatar_run_of_an_older_checkpoint_format(tmp_path):
    from avatar3d.demo import discard_outdated_run
    from avatar3d.files import CHECKPOINT, save_checkpoint
    from avatar3d.render.avatar import CHECKPOINT_FORMATS

    old, current = tmp_path / "old", tmp_path / "current"
    nerf = CHECKPOINT_FORMATS["nerf"]  # a payload without a backend is the NeRF's, the demo's
    for run, version in ((old, nerf - 1), (current, nerf)):
        run.mkdir()
        save_checkpoint(run / CHECKPOINT, {"avatar": {"format": version}})
        discard_outdated_run(run)
    assert not old.exists() and (current / CHECKPOINT).exists()
    discard_outdated_run(tmp_path / "missing")  # no run yet: nothing to do
