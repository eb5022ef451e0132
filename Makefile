# Two commands do all the set-up:  `make book` builds the rendered book, `make test` runs the tests.
# Each creates the virtual environment .venv from requirements.txt first if it is missing or stale.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# nbgrader runs `alembic` as a subprocess, so the venv's bin/ must be on PATH.
RUN    := PATH="$(abspath $(BIN)):$$PATH"

.PHONY: book book-term test exercises venv clean

book: $(VENV)/.installed
	$(RUN) $(BIN)/jupyter-book build . --warningiserror --keep-going
	@echo "The book is in _build/html/index.html"

# The term edition: the same book without the exercises' solutions, for a class that grades the
# exercises. One switch, BOOK_EDITION=term (book/_ext/editions.py), drops every {solution}; the
# edition is written to its own folder, and its chapters come from the cache `make book` filled
# (they execute here only when that cache lacks them).
book-term: $(VENV)/.installed
	BOOK_EDITION=term $(RUN) $(BIN)/jupyter-book build . --path-output _build/term --warningiserror --keep-going
	@echo "The term edition is in _build/term/_build/html/index.html"

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
