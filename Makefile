# Two commands do all the set-up:  `make book` builds the rendered book, `make test` runs the tests.
# Each creates the virtual environment .venv from requirements.txt first if it is missing or stale.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# nbgrader runs `alembic` as a subprocess, so the venv's bin/ must be on PATH.
RUN    := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: book test exercises venv clean

book: $(VENV)/.installed
	$(RUN) $(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html/index.html"

test: $(VENV)/.installed
	$(RUN) $(BIN)/pytest

# Regenerate the learners' notebooks in exercises/ from the instructor's in solutions/.
exercises: $(VENV)/.installed
	for dir in solutions/*/; do $(RUN) $(BIN)/nbgrader generate_assignment "$$(basename $$dir)" --force; done

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

clean:
	rm -rf _build
