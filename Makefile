# nsgroup — build, run and test.
#
#   make run     install what is missing, build (release), run nsgroupd in the foreground
#   make check   install what is missing, start journald and create test users if needed,
#                run every test
#
# Both must run as root on a fresh Debian 12 machine with Swift 6 on PATH.

SWIFT        ?= swift
PREFIX       ?= /usr/local
DESTDIR      ?=
SOCKET       ?= /run/nsgroup/nsgroupd.sock
RELEASE_FLAGS := -c release --static-swift-stdlib
RELEASE_BIN   := .build/release

# Debian packages the build and the tests need.
APT_PACKAGES := libsystemd-dev pkg-config systemd util-linux iproute2 procps tmux passwd python3 hyperfine

# Unprivileged users the end-to-end tests act as: alice owns groups, bob is a
# stranger, carol is in the admin group, dave is a member by name, erin by
# being in the Unix group nsg-friends.
TEST_USERS := nsg-alice nsg-bob nsg-carol nsg-dave nsg-erin

.PHONY: all deps build release run check test bench journald test-users clean

all: build

deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "make: swift not found on PATH (expected Swift 6 at /opt/swift/usr/bin)"; exit 1; }

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build $(RELEASE_FLAGS)

run: release
	$(RELEASE_BIN)/nsgroupd --socket $(SOCKET)

# A standalone journald when systemd is not running one: the audit tests read
# their records back with journalctl. `systemd-cat` succeeds only when journald
# really accepts records (a leftover socket file is not enough).
journald: deps
	@if echo "nsgroup: journald probe" | systemd-cat -t nsgroup-make 2>/dev/null; then \
	  echo "journald: running"; \
	else \
	  echo "journald: starting a standalone systemd-journald"; \
	  setsid /lib/systemd/systemd-journald </dev/null >/dev/null 2>&1 & \
	  for i in $$(seq 50); do \
	    echo "nsgroup: journald probe" | systemd-cat -t nsgroup-make 2>/dev/null && exit 0; sleep 0.1; \
	  done; \
	  echo "journald did not start"; exit 1; \
	fi

test-users: deps
	@getent group nsgroup-admin >/dev/null || groupadd --system nsgroup-admin
	@getent group nsg-friends >/dev/null || groupadd nsg-friends
	@for u in $(TEST_USERS); do \
	  id -u $$u >/dev/null 2>&1 || useradd --create-home --shell /bin/bash $$u; \
	done
	@usermod -a -G nsgroup-admin nsg-carol
	@usermod -a -G nsg-friends nsg-erin

check: deps journald test-users
	$(SWIFT) build --build-tests
	$(SWIFT) test

test: check

# Speed figures, as ratios against anchors measured in the same run (see README, Performance).
bench: release test-users
	$(RELEASE_BIN)/nsgroup-bench enter

clean:
	rm -rf .build
