# asu-builder — the two commands that matter: `make run` and `make test`.

CARGO        ?= cargo
PREFIX       ?= /usr/local
DEV_CONFIG   ?= etc/asu-builder.yaml
# The private Podman service `make run` starts for the development config.
DEV_PODMAN   ?= $(CURDIR)/data/podman
PODMAN_SH    := tests/podman/service.sh

.PHONY: all build run test lint unit bench bench-stats podman-install podman-up podman-down chromium-install clean

all: build

build:
	$(CARGO) build --release

# Start a private Podman API service unless something already answers on the
# configured socket, then run the daemon with the development config.
run: build podman-up
	./target/release/asu-builder --config $(DEV_CONFIG)

podman-install:
	bash $(PODMAN_SH) install

podman-up: podman-install
	bash $(PODMAN_SH) start $(DEV_PODMAN)

podman-down:
	bash $(PODMAN_SH) stop $(DEV_PODMAN)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings

# Everything CI runs. The Podman tier starts its own private service per
# test binary; `podman-install` makes sure Podman is there to start, and
# `chromium-install` the headless browser of tests/browser.rs.
test: lint podman-install chromium-install
	$(CARGO) test --all-targets

chromium-install:
	bash tests/browser/chromium.sh install

unit:
	$(CARGO) test --lib

# Figures, not assertions, written to BENCHMARKS.md: asu-builder, the bare
# stack and the reference server side by side (tests/bench/README.md).
bench:
	bash tests/bench/bench.sh

# Statistics endpoints over a year of seeded events (1 million by default;
# STATS_BENCH_EVENTS to change): seeding time and each endpoint's latency.
bench-stats:
	$(CARGO) test --release --test stats_bench -- --ignored --nocapture

clean:
	$(CARGO) clean
