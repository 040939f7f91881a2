# The two commands of the README. Both set everything up first (fast when already done).
#   make lab    JupyterLab on lessons/01_course_overview.ipynb
#   make test   the full test suite (pass pytest options with ARGS="-k tokenizer -x")
PYTHON ?= python3

.PHONY: lab test setup lint clean-notebooks

lab:
	$(PYTHON) tools/bootstrap.py lab

test:
	$(PYTHON) tools/bootstrap.py test $(ARGS)

setup:
	$(PYTHON) tools/bootstrap.py setup

lint:
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

clean-notebooks:
	.venv/bin/python tools/strip_notebooks.py lessons exercises solutions
