# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates .venv and installs the pinned set on first use (and again when pyproject.toml
# or constraints.txt change).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lock clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/avatar3d demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Re-resolve the full pinned set after changing pyproject.toml dependencies.
lock: $(STAMP)
	$(BIN)/python -m pip freeze --exclude-editable | sed 's/+cpu$$//' | sort -f > constraints.txt.new
	(echo '# Full pinned set, tested together on Python 3.11 (CPU). The Makefile installs with -c this file.'; \
	 echo '# Regenerate: make lock'; cat constraints.txt.new) > constraints.txt && rm constraints.txt.new

clean:
	rm -rf $(VENV)
