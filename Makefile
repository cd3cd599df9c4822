# trader-deploy: the two commands a newcomer needs are `make demo` and `make test`.
# Everything the targets need is installed by testbed/install-deps.sh and cached under
# ~/.cache/trader-deploy/, so a warm run is fast.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
CARGO ?= cargo
BED_DIR ?= $(CURDIR)/target/testbed

.PHONY: all build release static image container arm64-static arm64 deps tools lint unit e2e test testbed-up testbed-down testbed-env demo bench soak clean

all: build

build:
	$(CARGO) build

release:
	$(CARGO) build --release

# The container's binary: static musl, rustls, no OpenSSL. Its own target dir, so that this
# long release build never holds the lock of the everyday one.
STATIC_TARGET_DIR ?= $(CURDIR)/target/static
STATIC_BIN := $(STATIC_TARGET_DIR)/x86_64-unknown-linux-musl/release/trader-deploy
static:
	CARGO_TARGET_DIR=$(STATIC_TARGET_DIR) $(CARGO) build --release --locked --target x86_64-unknown-linux-musl --bin trader-deploy

# The action's image without a Docker engine: the Dockerfile's final stage assembled with buildah
# from the static binary and the bed's helm builds, as localhost/trader-deploy:dev (helm 3) and
# :dev-helm4 in the local containers storage (tests/bed_image.rs runs it as GitHub's runner does).
image: static tools
	scripts/image.sh $(STATIC_BIN)

# The static binary and helm run in an empty root (what the image holds), as root via chroot.
container: static
	TD_STATIC_BIN=$(STATIC_BIN) $(CARGO) test --workspace --features container --test container

# The arm64 proof: the binary cross-built for aarch64-unknown-linux-musl the Dockerfile's way
# (clang compiles ring's C without a target sysroot, rust-lld links Rust's self-contained musl)
# and run under qemu-user (tests/arm64.rs). Profile cross-check (Cargo.toml): release settings
# without the optimisation and LTO, so that a cold build stays within CI's budget
# (docs/benchmarks.md); the released images' binaries use the full release profile.
ARM64_TARGET_DIR ?= $(STATIC_TARGET_DIR)-arm64
ARM64_BIN := $(ARM64_TARGET_DIR)/aarch64-unknown-linux-musl/cross-check/trader-deploy
arm64-static:
	CARGO_TARGET_DIR=$(ARM64_TARGET_DIR) CC_aarch64_unknown_linux_musl=clang \
	  CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=rust-lld \
	  $(CARGO) build --profile cross-check --locked --target aarch64-unknown-linux-musl --bin trader-deploy

arm64: arm64-static
	TD_ARM64_BIN=$(ARM64_BIN) $(CARGO) test --workspace --features container --test arm64

# apt, npm, pip and rustup installs the tests need (idempotent).
deps:
	testbed/install-deps.sh

# The bed's upstream programs (etcd, kube-*, the real node's kubelet, kwok, helm 3 and 4), built
# once from the Go module proxy.
tools: deps
	testbed/build-tools.sh all

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --features bed,soak,container -- -D warnings

# Unit tests, and the cross-system tests that need no bed. Every cargo call here says
# --workspace: the same feature resolution everywhere, so kube and hyper build once, not thrice.
unit:
	$(CARGO) test --workspace

# End-to-end tests against the bed (brought up if it is not running, torn down after), the
# action's image among them.
e2e: tools image
	testbed/with-bed.sh $(CARGO) test --workspace --no-fail-fast --features bed --test 'bed_*' -- --test-threads=4

test: deps tools lint unit container arm64 e2e

testbed-up: tools
	testbed/up.sh

testbed-down:
	testbed/down.sh

# Prints `export KEY=VALUE` lines for the running bed: eval "$$(make -s testbed-env)"
testbed-env:
	@cat $(BED_DIR)/env

# The shipped pipeline on the local bed: a push to main deploys to dev, the v1.2.0 tag to prod
# once approved, and a broken tag is caught and rolled back; prints each run's log and job
# summary. Brings the bed up if needed and tears down what it started (scripts/demo.sh).
demo: tools
	scripts/demo.sh

# Figures on the bed: the static release binary against bare helm 3/4; writes
# docs/benchmarks.md. TD_BENCH_RUNS (default 3), TD_BENCH_HELM_TIMEOUT (5m), TD_BENCH_ONLY=real (only
# the real node's races, rewriting that section). A running bed (its env file present) is used as
# it is and left alone; otherwise with-bed.sh brings one up and down.
bench: tools static
	if [ -f $(BED_DIR)/env ]; then TD_BENCH_BIN=$(STATIC_BIN) TD_BED_ENV=$(BED_DIR)/env python3 bench/bench.py; \
	else TD_BENCH_BIN=$(STATIC_BIN) testbed/with-bed.sh python3 bench/bench.py; fi

# The long reliability tests (tests/bed_soak.rs): kube-apiserver killed and restarted
# mid-rollout. They stop the API server, so they run one at a time on a bed of their own (state in
# target/testbed-soak, the ports README's second bed uses; its real node gets its own bridge,
# subnet 10.244.80.0/24, cgroup, kubelet ports 45085/45086 and containerd), brought up and torn
# down here.
SOAK_BED := TD_BED_DIR=$(CURDIR)/target/testbed-soak TD_BED_CLUSTER=trader-soak \
	TD_BED_REGISTRY_PORT=45080 TD_BED_APP_PORT=45081 TD_BED_APP_FALLBACK_PORT=45082 \
	TD_BED_APP_POOL=45090-45099 TD_BED_GITHUB=0
soak: tools
	$(SOAK_BED) testbed/with-bed.sh $(CARGO) test --workspace --features bed,soak --test soak -- --test-threads=1

clean:
	-testbed/down.sh
	$(CARGO) clean
