"""Presets, nested component configs and their layering, on the command line and in YAML."""

import subprocess
import sys

import pytest
import yaml

from avatar3d import config as config_io
from avatar3d.cli import main
from avatar3d.errors import BadArgumentError
from avatar3d.render.config import HashGridConfig, TorsoConfig
from avatar3d.train.config import MotionTrainConfig, RenderTrainConfig
from data_prep.config import PrepConfig


def _printed(capsys, *argv) -> dict:
    """The settings `avatar3d ... --print-config` prints, parsed."""
    assert main([*argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_nested_override_with_the_quality_preset_reaches_the_head_config():
    cfg = config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig, "quality"), {"subject": "s"},
                          config_io.parse_overrides(["head.grid.levels=12"]))
    assert cfg.head.grid == HashGridConfig(levels=12, log2_table_size=19, base_resolution=16, finest_resolution=2048)
    assert (cfg.march.grid_resolution, cfg.march.steps_per_diagonal, cfg.head_steps) == (128, 512, 30000)
    assert cfg.torso == TorsoConfig()  # untouched groups keep their defaults


def test_print_config_shows_the_merged_nested_settings(capsys):
    # key=value after a flag, a nested flag, and the preset: each layer reaches the printed settings.
    printed = _printed(capsys, "train", "render", "subj", "--preset", "quality", "head.grid.levels=12",
                       "--head.grid.finest-resolution", "1024", "torso.hidden=32")
    assert printed["head"]["grid"] == {"levels": 12, "features_per_level": 2, "log2_table_size": 19,
                                       "base_resolution": 16, "finest_resolution": 1024}
    assert printed["torso"]["hidden"] == 32 and printed["march"]["grid_resolution"] == 128
    assert printed["subject"] == "subj" and printed["head_steps"] == 30000


def test_help_lists_nested_fields_with_their_docstrings_and_preset_values(capsys):
    with pytest.raises(SystemExit):
        main(["train", "render", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--head.grid.levels LEVELS Number of resolution levels L. (preset fast: 8)" in text
    assert "--march.surface-band" in text and "--preset NAME" in text and "fast, quality" in text


def test_the_fast_preset_time_limit_can_be_lifted(capsys):
    assert _printed(capsys, "train", "render", "subj")["max_minutes"] == 9.0
    assert _printed(capsys, "train", "render", "subj", "max_minutes=null")["max_minutes"] is None
    assert _printed(capsys, "train", "render", "subj", "--max-minutes", "none")["max_minutes"] is None
    assert _printed(capsys, "train", "render", "subj", "--preset", "quality")["max_minutes"] is None


def test_every_command_with_presets_builds_its_default_one(capsys):
    assert config_io.preset_names(RenderTrainConfig) == ["fast", "quality"]
    assert config_io.preset_names(MotionTrainConfig) == ["default"] == config_io.preset_names(PrepConfig)
    prep = config_io.build(PrepConfig, config_io.load_preset(PrepConfig), {"video": "v.mp4", "out": "o"})
    motion = config_io.build(MotionTrainConfig, config_io.load_preset(MotionTrainConfig))
    assert prep.resolution == 512 and motion.vae_steps == 3000
    assert _printed(capsys, "prep", "v.mp4", "--out", "o", "resolution=256")["resolution"] == 256
    assert _printed(capsys, "train", "motion", "--preset", "default", "vae_steps=10")["vae_steps"] == 10


def test_a_preset_is_added_by_dropping_in_a_file(tmp_path, monkeypatch, capsys):
    for shipped in config_io.PRESET_FOLDER.glob("*.yaml"):
        (tmp_path / shipped.name).write_text(shipped.read_text())
    (tmp_path / "render-tiny.yaml").write_text("head_steps: 5\nhead:\n  grid:\n    levels: 2\n")
    monkeypatch.setattr(config_io, "PRESET_FOLDER", tmp_path)
    assert config_io.preset_names(RenderTrainConfig) == ["fast", "quality", "tiny"]
    printed = _printed(capsys, "train", "render", "subj", "--preset", "tiny")
    assert printed["head_steps"] == 5 and printed["head"]["grid"]["levels"] == 2
    assert printed["max_minutes"] is None  # one preset, not layered over the default one


def test_saved_config_reproduces_the_settings(tmp_path, capsys):
    cfg = config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig, "quality"),
                          {"subject": tmp_path / "subj", "run": tmp_path / "run"},
                          config_io.parse_overrides(["head.grid.levels=12", "march.surface_band=0.05", "seed=3"]))
    config_io.save(cfg, tmp_path / "config.yaml")
    # The default (fast) preset sits under the file: the file's values, null included, must win.
    again = config_io.build(RenderTrainConfig, config_io.load_preset(RenderTrainConfig),
                            config_io.load_yaml(tmp_path / "config.yaml"))
    assert again == cfg and again.head.grid.levels == 12 and again.max_minutes is None
    printed = _printed(capsys, "train", "render", str(tmp_path / "subj"), "--config", str(tmp_path / "config.yaml"))
    assert printed == config_io.to_dict(cfg)


@pytest.mark.parametrize("words, message", [
    (["head.grid.levle=3"], "unknown setting 'head.grid.levle'; head.grid has: levels, features_per_level"),
    (["head.grid.levels=many"], "head.grid.levels='many' is not a valid int"),
    (["head.grid.levels=100"], "head.grid: hash grid levels=100 is out of range: use an integer in [1, 64]"),
    (["head=3"], "head is a group of settings, not one value: set its fields, e.g. head.grid=..."),
    (["head.grid=3"], "head.grid is a group of settings"),
    (["gaussians.max_count=0"], "gaussians: max_count=0: use a positive integer"),
    (["head.warp_radius=0"], "head: warp_radius=0.0: use a positive distance"),
    (["max_minutes=-1"], "--max-minutes must be positive"),
    (["--preset", "huge"], "--preset 'huge': use fast or quality"),
])
def test_bad_settings_are_one_line_errors_naming_the_key(words, message, capsys):
    assert main(["train", "render", "subj", *words, "--print-config"]) == 2
    captured = capsys.readouterr()
    assert message in captured.err and captured.err.strip().count("\n") == 0 and not captured.out


def test_bad_nested_keys_in_a_config_file_name_their_path(tmp_path):
    settings = tmp_path / "settings.yaml"
    settings.write_text("march:\n  grid_resolution: 32\n  sample_count: 7\n")
    with pytest.raises(BadArgumentError, match="unknown setting 'march.sample_count'; march has: grid_resolution"):
        config_io.build(RenderTrainConfig, config_io.load_yaml(settings), {"subject": "s"})
    settings.write_text("torso:\n  grid: [1, 2]\n")
    with pytest.raises(BadArgumentError, match="torso.grid is a group of settings"):
        config_io.build(RenderTrainConfig, config_io.load_yaml(settings), {"subject": "s"})
    settings.write_text("head_steps: {a: 1}\n")
    with pytest.raises(BadArgumentError, match="head_steps takes one value, not a mapping"):
        config_io.build(RenderTrainConfig, config_io.load_yaml(settings), {"subject": "s"})


def test_help_and_config_classes_do_not_import_torch():
    code = ("import sys; from avatar3d import cli; cli.build_parser(cli._commands()); "
            "from avatar3d import config; from avatar3d.train.config import RenderTrainConfig; "
            "config.build(RenderTrainConfig, config.load_preset(RenderTrainConfig), {'subject': 's'}); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_a_broken_preset_file_is_a_one_line_error(tmp_path, monkeypatch, capsys):
    for shipped in config_io.PRESET_FOLDER.glob("*.yaml"):
        (tmp_path / shipped.name).write_text(shipped.read_text())
    (tmp_path / "render-fast.yaml").write_text("head: [unclosed\n")
    monkeypatch.setattr(config_io, "PRESET_FOLDER", tmp_path)
    assert main(["train", "render", "subj", "--print-config"]) == 2
    err = capsys.readouterr().err
    assert "render-fast.yaml is not valid YAML" in err and "Traceback" not in err
