"""Motion generation speed: audio features, VAE, subject calibration and LLE for a long speech, per stage.

Usage: python benchmarks/motion.py SUBJECT --motion RUN/motion.pt [--seconds 60] [--threads N]

The speech is the virtual actor's voice reading sentences (espeak-ng), `seconds` long.
Prints seconds per encoder alone, then per stage of generation and in all. Target (issue 5): 60 s of audio in under 2 s on a
2-core CPU.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from avatar3d.audio import features as audio_features
from avatar3d.motion.features import feature_matrix
from avatar3d.motion.generate import SubjectMotion, subject_code_map
from avatar3d.motion.lle import LLEProjector
from avatar3d.motion.model import MotionModel
from avatar3d.runtime import set_threads


def speech(seconds: float) -> tuple[np.ndarray, int]:
    from avatar3d.rig.speech import SENTENCES
    from avatar3d.rig.speech import synthesize

    parts, total, index = [], 0, 0
    while True:
        part = synthesize(SENTENCES[index % len(SENTENCES)])
        parts.append(part.samples)
        total += len(part.samples)
        index += 1
        if total >= seconds * part.sample_rate:
            return np.concatenate(parts)[: int(seconds * part.sample_rate)], part.sample_rate


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("subject", type=Path)
    parser.add_argument("--motion", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--threads", type=int, help="as avatar3d --threads (default: every usable CPU)")
    args = parser.parse_args()
    args.threads = set_threads(args.threads)
    samples, rate = speech(args.seconds)
    subject = SubjectMotion.load(args.subject)
    model = MotionModel.load(args.motion)
    frames = int(round(args.seconds * subject.fps))
    for name in audio_features.ENCODERS:
        _, seconds = timed(lambda: audio_features.extract(samples, rate, frames, subject.fps, (name,)))
        print(f"{'  ' + name + ' alone':<22} {seconds:>7.2f} s")
    # What generation runs: all encoders at once, phones decoding in worker processes meanwhile.
    extracted, t_features = timed(lambda: audio_features.extract(samples, rate, frames, subject.fps))
    features, t_norm = timed(lambda: feature_matrix(extracted))
    displacement, t_vae = timed(lambda: model.generate(features, subject.neutral))
    bank = subject.codes(model)
    code_map, t_map = timed(lambda: subject_code_map(model, subject, bank))
    _, t_lle = timed(lambda: LLEProjector(bank).project(code_map(model.basis.encode(displacement))))
    stages = {
        "audio features": t_features,
        "normalise": t_norm,
        "VAE + lip press": t_vae,
        f"calibration ({len(subject.landmarks)} fr)": t_map,
        "LLE": t_lle,
    }
    for name, seconds in stages.items():
        print(f"{name:<22} {seconds:>7.2f} s")
    print(f"{'total':<22} {sum(stages.values()):>7.2f} s  (target < 2 s for 60 s)")
    print(f"{args.seconds:.0f} s of audio, {frames} frames, {args.threads} threads")


if __name__ == "__main__":
    main()
