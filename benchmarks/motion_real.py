"""Lip sync on real speech: `avatar3d eval motion --text` over a folder of recordings.

Usage: python benchmarks/motion_real.py SUBJECT [--speech .cache/speech-dev] [--motion CKPT ...]

Every ``NAME.wav`` (or .flac, .mp3...) with a ``NAME.txt`` transcript beside it drives the
subject; the transcript is aligned to it and the motion scored (`transcript_scores`), without
the transcript (audio only) and with it (``guided``). ``make speech-dev`` fetches the
development set. Several ``--motion`` checkpoints are compared in one table. Prints one row
per recording and model, and the p/b/m pooled over the recordings.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from avatar3d.motion.config import MotionEvalConfig
from avatar3d.runtime import set_quiet
from avatar3d.train.motion_eval import evaluate_motion

SCORES = ("bilabial_closure", "closure_ratio", "vowel_open", "sync_offset_frames")


def recordings(folder: Path) -> list[tuple[Path, Path]]:
    """(audio, transcript) pairs: audio files with a same-named .txt."""
    audio = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".wav", ".flac", ".mp3", ".ogg", ".m4a"})
    return [(p, p.with_suffix(".txt")) for p in audio if p.with_suffix(".txt").exists()]


def score(subject: Path, audio: Path, transcript: Path, motion: Path | None) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        cfg = MotionEvalConfig(subject=subject, audio=audio, text_file=transcript, motion=motion,
                               metrics=Path(scratch) / "metrics.json")
        return evaluate_motion(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--speech", type=Path, default=Path(".cache/speech-dev"))
    parser.add_argument("--motion", type=Path, nargs="*", default=[None])
    parser.add_argument("--json", type=Path, help="also write every score here")
    args = parser.parse_args()
    set_quiet(True)
    pairs = recordings(args.speech)
    if not pairs:
        raise SystemExit(f"no audio with a .txt transcript in {args.speech}; run `make speech-dev`")
    print(f"| model | recording | p/b/m | {' | '.join(SCORES)} | guided closure | guided ratio |")
    print("|---|---|---|" + "---|" * (len(SCORES) + 2))
    everything = {}
    for motion in args.motion:
        name = "shipped" if motion is None else str(motion)
        rows = {audio.stem: score(args.subject, audio, text, motion) for audio, text in pairs}
        everything[name] = rows
        for stem, row in rows.items():
            cells = [f"{row[key]:.3f}" if isinstance(row.get(key), float) else str(row.get(key)) for key in SCORES]
            print(f"| {name} | {stem} | {row['bilabial_count']} | {' | '.join(cells)} | "
                  f"{row['guided_bilabial_closure']:.3f} | {row['guided_closure_ratio']:.3f} |")
        counts = np.array([row["bilabial_count"] for row in rows.values()])
        pooled = {key: float(np.sum([row[key] * row["bilabial_count"] for row in rows.values()]) / counts.sum())
                  for key in ("bilabial_closure", "guided_bilabial_closure")}
        print(f"| {name} | pooled | {counts.sum()} | {pooled['bilabial_closure']:.3f} | | | | "
              f"{pooled['guided_bilabial_closure']:.3f} | |")
    if args.json:
        args.json.write_text(json.dumps(everything, indent=1))


if __name__ == "__main__":
    main()
