# repl-mm: install, test and demo targets.  `make install` is idempotent: a second run takes seconds.
PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
PIP         := $(PY) -m pip
# Optional speed-up: a folder holding a prebuilt mmcv wheel for this torch; without it mmcv is
# built from its sdist (11-14 min on 2 cores).
MMCV_WHEELS ?= ../shared/wheels
MMCV_BUILD  ?= .build/mmcv
STAMP       := $(VENV)/.repl-mm-stack

# Every version pin lives in requirements/constraints.txt (with the reason for each).
PINS        := -c requirements/constraints.txt
MMCV        := mmcv-$(shell sed -n 's/^mmcv==//p' requirements/constraints.txt)
TORCH       := torch torchvision
BASE        := setuptools numpy wheel mmengine
STACK       := mmdet mmsegmentation mmpretrain pycocotools cityscapesscripts ftfy regex \
               matplotlib pytest numpy setuptools pillow

.PHONY: install venv fashion-mnist test test-slow demo

install: $(STAMP) $(VENV)/.repl-mm-editable fashion-mnist

venv: $(PY)

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

# The pinned OpenMMLab stack; mmcv comes from a prebuilt wheel when one is at hand, else it is built
# from the sdist patched to C++20 (torch 2.14 headers demand it; 11-14 min on 2 cores).
$(STAMP): $(PY) Makefile requirements/constraints.txt
	$(PIP) install -q $(PINS) $(TORCH)
	$(PIP) install -q $(PINS) $(BASE)
	@if $(PY) -c "import mmcv, mmcv.ops" 2>/dev/null; then \
		echo "mmcv already installed"; \
	elif ls $(MMCV_WHEELS)/$(MMCV)-*.whl >/dev/null 2>&1; then \
		$(PIP) install -q --no-index --find-links $(MMCV_WHEELS) $(PINS) mmcv; \
	else \
		$(MAKE) --no-print-directory mmcv-from-source; \
	fi
	$(PIP) install -q $(PINS) $(STACK)
	$(PIP) check
	touch $@

.PHONY: mmcv-from-source
mmcv-from-source:
	mkdir -p $(MMCV_BUILD)/src $(MMCV_BUILD)/wheels
	$(PIP) download -q --no-deps --no-binary :all: --no-build-isolation $(PINS) mmcv \
		-d $(MMCV_BUILD)/src
	tar xzf $(MMCV_BUILD)/src/$(MMCV).tar.gz -C $(MMCV_BUILD)/src
	sed -i "s/'-std=c++17'/'-std=c++20'/g" $(MMCV_BUILD)/src/$(MMCV)/setup.py
	MMCV_WITH_OPS=1 MAX_JOBS=2 $(PIP) wheel --no-build-isolation --no-deps \
		$(MMCV_BUILD)/src/$(MMCV) -w $(MMCV_BUILD)/wheels
	$(PIP) install -q --no-index --find-links $(MMCV_BUILD)/wheels $(PINS) mmcv

$(VENV)/.repl-mm-editable: $(STAMP) setup.cfg pyproject.toml
	$(PIP) install -q --no-deps --no-build-isolation -e .
	touch $@

# Real image content for the demo data (Debian's dataset-fashion-mnist). Best effort: without it the
# generators fall back to procedural shapes and say so.
FMNIST_DIR := /usr/share/datasets/fashion-mnist
fashion-mnist:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ]; then :; \
	elif command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		(apt-get update -q && apt-get install -y -q dataset-fashion-mnist) >/dev/null \
		|| echo "warning: could not install dataset-fashion-mnist; demo data will be procedural"; \
	else echo "warning: $(FMNIST_DIR) missing (apt-get install dataset-fashion-mnist as root);" \
		"demo data will be procedural"; fi

# The test suite CI runs (README's test command): fast tests only, a few minutes.
test: install
	OMP_NUM_THREADS=2 $(PY) -m pytest -q

# Heavier tests (minutes each); run before resolving an issue.
test-slow: install
	OMP_NUM_THREADS=2 $(PY) -m pytest -q -m slow

# Train Mask R-CNN RepL-R50 from scratch on generated COCO-layout data, evaluate it on the held-out
# val split, plot its training curves (loss, memory, s/iter, coefficients) and compare trainable
# parameters with the plain ResNet-50.
DEMO_CFG  := configs/demo/mask_rcnn_repl_r50_demo.py
DEMO_WORK := work_dirs/demo_mask_rcnn_repl_r50
demo: install
	$(PY) tools/make_demo_data.py coco --out data/demo_coco
	OMP_NUM_THREADS=2 $(PY) tools/train.py $(DEMO_CFG) --work-dir $(DEMO_WORK)
	OMP_NUM_THREADS=2 $(PY) tools/test.py $(DEMO_CFG) $(DEMO_WORK)/iter_150.pth \
		--work-dir $(DEMO_WORK)/test
	$(PY) tools/analysis/plot_logs.py $(DEMO_WORK) --out $(DEMO_WORK)/training_curves.png
	$(PY) tools/analysis/compare_params.py $(DEMO_CFG)
