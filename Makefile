# repl-mm: install, test and demo targets.  `make install` is idempotent: a second run takes seconds.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip
SHARED      ?= ../shared
MMCV_WHEELS ?= $(SHARED)/wheels
MMCV_BUILD  ?= .build/mmcv
STAMP       := $(VENV)/.repl-mm-stack

# Pins: see ../shared/ENVIRONMENT.md for why each one is there.
TORCH_PINS  := torch==2.14.1 torchvision==0.29.1
BASE_PINS   := 'setuptools>=77.0.3,<81' 'numpy<2.4' wheel mmengine==0.10.7
STACK_PINS  := mmdet==3.3.0 mmsegmentation==1.2.2 mmpretrain==1.2.0 pycocotools \
               cityscapesscripts ftfy regex matplotlib pytest \
               'numpy<2.4' 'setuptools>=77.0.3,<81' 'pillow<13'

.PHONY: install venv stack data-deps test test-slow demo clean-demo

install: $(STAMP) $(VENV)/.repl-mm-editable

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The pinned OpenMMLab stack; mmcv comes from a prebuilt wheel when one is at hand, else it is built
# from the sdist patched to C++20 (torch 2.14 headers demand it; 11-14 min on 2 cores).
$(STAMP): $(PY) Makefile
	$(PIP) install -q $(TORCH_PINS)
	$(PIP) install -q $(BASE_PINS)
	@if $(PY) -c "import mmcv, mmcv.ops" 2>/dev/null; then \
		echo "mmcv already installed"; \
	elif ls $(MMCV_WHEELS)/mmcv-2.1.0-*.whl >/dev/null 2>&1; then \
		$(PIP) install -q --no-index --find-links $(MMCV_WHEELS) mmcv==2.1.0; \
	else \
		$(MAKE) --no-print-directory mmcv-from-source; \
	fi
	$(PIP) install -q $(STACK_PINS)
	$(PIP) check
	touch $@

.PHONY: mmcv-from-source
mmcv-from-source:
	mkdir -p $(MMCV_BUILD)/src $(MMCV_BUILD)/wheels
	$(PIP) download -q --no-deps --no-binary :all: mmcv==2.1.0 -d $(MMCV_BUILD)/src
	tar xzf $(MMCV_BUILD)/src/mmcv-2.1.0.tar.gz -C $(MMCV_BUILD)/src
	sed -i "s/'-std=c++17'/'-std=c++20'/g" $(MMCV_BUILD)/src/mmcv-2.1.0/setup.py
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(PIP) wheel --no-build-isolation --no-deps \
		$(MMCV_BUILD)/src/mmcv-2.1.0 -w $(MMCV_BUILD)/wheels
	$(PIP) install -q --no-index --find-links $(MMCV_BUILD)/wheels mmcv==2.1.0

$(VENV)/.repl-mm-editable: $(STAMP) setup.cfg pyproject.toml
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@
