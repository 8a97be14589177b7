"""The ``avatar3d`` command: parses, builds a config, calls one function.

    avatar3d [--device auto|cpu|cuda] [--threads N] [--quiet] [--config FILE.yaml] COMMAND [--preset NAME]
             [--flags] [key=value ...] [--print-config]
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from avatar3d import config as config_io
from avatar3d.errors import UserError
from avatar3d.runtime import console, hide_native_logs, keep_freed_memory, resolve_device, set_quiet, set_threads


@dataclass(frozen=True)
class Command:
    summary: str
    config: type | None  # the command's settings dataclass
    run: Callable[[Any, Any], object]  # (config, torch.device) -> anything


def _run_info(_config, device) -> None:
    from avatar3d.info import print_info

    print_info(device)


def _run_synth(config, _device) -> None:
    from avatar3d.synth.clip import make_clip

    make_clip(config)


def _run_prep(config, _device) -> None:
    from data_prep.pipeline import run_prep

    run_prep(config)


def _run_demo(config, device) -> None:
    from avatar3d.demo import run_demo

    run_demo(config, device)


def _run_train_render(config, device) -> None:
    from avatar3d.train.render import train_render

    train_render(config, device)


def _run_eval_render(config, device) -> None:
    from avatar3d.train.render_eval import evaluate_render

    evaluate_render(config, device)


def _run_eval_relight(config, device) -> None:
    from avatar3d.train.relight_eval import evaluate_relight

    evaluate_relight(config, device)


def _run_train_motion(config, device) -> None:
    from avatar3d.train.motion import train_motion
    from data_prep.video_corpus import with_prepared_videos

    train_motion(with_prepared_videos(config), device)


def _run_motion(config, _device) -> None:
    from avatar3d.motion.generate import write_motion
    from data_prep.pose_reference import with_tracked_pose

    write_motion(with_tracked_pose(config))


def _run_eval_motion(config, _device) -> None:
    from avatar3d.train.motion_eval import evaluate_motion
    from data_prep.pose_reference import with_tracked_pose

    evaluate_motion(with_tracked_pose(config))


def _run_render(config, device) -> None:
    from avatar3d.render.sequence import render_frames

    render_frames(config, device)


def _run_drive(config, device) -> None:
    from avatar3d.drive import drive
    from data_prep.pose_reference import with_tracked_pose

    drive(with_tracked_pose(config), device)


def _run_export_mesh(config, device) -> None:
    from avatar3d.export.mesh import export_mesh

    export_mesh(config, device)


def _run_export_gaussians(config, device) -> None:
    from avatar3d.export.gaussians import export_gaussians

    export_gaussians(config, device)


def _run_view(config, device) -> None:
    from viewer.server import run_viewer

    run_viewer(config, device)


def _commands() -> dict[str, Command]:
    """Commands by name; a two-word name ("train render") is a subcommand of its first word."""
    # Config classes import light modules only; the work is imported when a command runs.
    from avatar3d.demo import DemoConfig
    from avatar3d.export.config import DriveConfig, GaussiansConfig, MeshConfig
    from avatar3d.motion.config import MotionConfig, MotionEvalConfig
    from avatar3d.render.config import RenderFramesConfig
    from avatar3d.synth.config import SynthConfig
    from avatar3d.train.config import MotionTrainConfig, RelightEvalConfig, RenderEvalConfig, RenderTrainConfig
    from data_prep.config import PrepConfig
    from viewer.config import ViewConfig

    return {
        "info": Command("Print versions, the compute device and the available kernel backends.", None, _run_info),
        "synth": Command("Render a talking clip of the virtual actor with its exact ground truth.",
                         SynthConfig, _run_synth),
        "prep": Command("Turn a talking video into a subject folder (resumable).", PrepConfig, _run_prep),
        "train render": Command("Train a subject's avatar: head NeRF, then torso (resumable).", RenderTrainConfig,
                                _run_train_render),
        "train motion": Command("Train the audio-to-expression model and its sync expert on a talking corpus "
                                "(resumable).", MotionTrainConfig, _run_train_motion),
        "motion": Command("Turn speech into the subject's per-frame expression, landmarks, blinks and head pose.",
                          MotionConfig, _run_motion),
        "eval motion": Command("Score driven motion: lip sync, and against a virtual-actor truth file if given.",
                               MotionEvalConfig, _run_eval_motion),
        "eval render": Command("Score an avatar on the subject's held-out frames (PSNR, SSIM, LMD).",
                               RenderEvalConfig, _run_eval_render),
        "eval relight": Command("Score a virtual-actor avatar relit against the actor rendered under other lights.",
                                RelightEvalConfig, _run_eval_relight),
        "render": Command("Re-render a subject's frames with its avatar, optionally orbiting the head.",
                          RenderFramesConfig, _run_render),
        "drive": Command("Make the subject's avatar say new speech: video with audio, passes.", DriveConfig,
                         _run_drive),
        "export mesh": Command("Export the avatar's head as a coloured mesh (.ply, .obj, .glb).", MeshConfig,
                               _run_export_mesh),
        "export gaussians": Command("Export the avatar's head as 3D Gaussians (.ply, the layout splat viewers open).",
                                    GaussiansConfig, _run_export_gaussians),
        "view": Command("Show the avatar in a browser: orbit it, play a line with its audio, relight it, look at "
                        "its passes.", ViewConfig, _run_view),
        "demo": Command("Run the main job end to end on the built-in virtual actor.", DemoConfig, _run_demo),
    }


class _HelpFormatter(argparse.HelpFormatter):
    """Wraps help without splitting names like ``en-us-f2`` at their hyphens."""

    def _split_lines(self, text: str, width: int) -> list[str]:
        return textwrap.wrap(" ".join(text.split()), width, break_on_hyphens=False)


def _global_options(defaults: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the command name."""
    parser = argparse.ArgumentParser(add_help=False)
    suppress = argparse.SUPPRESS
    parser.add_argument("--device", default="auto" if defaults else suppress,
                        help="where to compute: auto (a GPU if usable), cpu or cuda (default: auto)")
    parser.add_argument("--threads", default=None if defaults else suppress, metavar="N",
                        help="CPU threads to use, worker processes included (default: the CPUs this process "
                             "may run on, or OMP_NUM_THREADS where set)")
    parser.add_argument("--quiet", action="store_true", default=False if defaults else suppress,
                        help="print errors only")
    parser.add_argument("--config", default=None if defaults else suppress, metavar="FILE.yaml",
                        help="settings file: a mapping of setting: value (flags and key=value override it)")
    return parser


def build_parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="avatar3d", parents=[_global_options(True)], formatter_class=_HelpFormatter,
                                     description="Personal 3D talking avatars from a few minutes of video.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    groups: dict[str, argparse._SubParsersAction] = {}
    for name, command in commands.items():
        group, _, leaf = name.rpartition(" ")
        if group and group not in groups:
            group_parser = sub.add_parser(group, help=f"{group.capitalize()} a stage: {', '.join(n.split()[1] for n in commands if n.startswith(group + ' '))}.",
                                          formatter_class=_HelpFormatter)
            groups[group] = group_parser.add_subparsers(dest=f"{group}_command", required=True, metavar="STAGE")
        child = (groups[group] if group else sub).add_parser(
            leaf, parents=[_global_options(False)], help=command.summary, description=command.summary,
            formatter_class=_HelpFormatter)
        if command.config is not None:
            config_io.add_arguments(child, command.config)
            child.add_argument("--print-config", action="store_true", default=False,
                               help="print the merged settings as YAML and exit without running")
            child.add_argument("overrides", nargs="*", metavar="key=value",
                               help="override any setting, nested ones by their dotted path (head.grid.levels=12)")
    return parser


def _parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> dict[str, Any]:
    """Parsed arguments; ``key=value`` words are taken anywhere after the command (argparse alone
    takes them only right after its positional arguments)."""
    namespace, extra = parser.parse_known_args(argv)
    args = vars(namespace)
    stray = [word for word in extra if word.startswith("-") or "=" not in word or "overrides" not in args]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args["overrides"] = args["overrides"] + extra
    return args


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for user errors, 130 when interrupted)."""
    # First, with the flag picked out of argv: numpy and torch size their pools when they load.
    early = argparse.ArgumentParser(add_help=False, allow_abbrev=False, parents=[_global_options(True)])
    try:
        set_threads(early.parse_known_args(argv)[0].threads)
        keep_freed_memory()
        _run(argv)
    except UserError as error:
        console.quiet = False
        console.print(f"[bold red]error:[/] {error}", soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        console.quiet = False
        console.print("interrupted; finished outputs are kept, unfinished ones removed")
        return 130
    return 0


def _run(argv: list[str] | None) -> None:
    """Parses the command line (the help reads the presets: a broken one is a UserError too),
    builds the command's config and runs the command, or prints the config."""
    commands = _commands()
    args = _parse(build_parser(commands), argv)
    name = args.pop("command")
    if f"{name}_command" in args:  # a two-word command such as "train render"
        name = f"{name} {args.pop(f'{name}_command')}"
    command = commands[name]
    set_quiet(args.pop("quiet"))
    hide_native_logs()
    config_file = args.pop("config")
    device_spec = args.pop("device")
    args.pop("threads")  # applied first, in main
    overrides = args.pop("overrides", [])
    print_config = args.pop("print_config", False)
    config = None
    if command.config is not None:
        from_file = config_io.load_yaml(config_file) if config_file else {}
        config = config_io.build(command.config, config_io.load_preset(command.config, args.pop("preset", None)),
                                 from_file, args, config_io.parse_overrides(overrides))
    if print_config:
        print(config_io.to_yaml(config), end="")
    else:
        command.run(config, resolve_device(device_spec))


if __name__ == "__main__":
    sys.exit(main())
