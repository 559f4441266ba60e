# nsgroup — build, run and test.
#
#   make run     install what is missing, build (release), run nsgroupd in the foreground
#   make check   install what is missing, start journald and create test users if needed,
#                run every test, then fuzz the request path for FUZZ_CHECK_SECONDS (60)
#   make fuzz    fuzz the request path for FUZZ_SECONDS (600); see Fuzzing below
#   make bench   build a release and run nsgroup-bench all: speed figures as ratios (README, Performance)
#   make install install the release build under PREFIX (default /usr/local), DESTDIR-aware
#   make deb     build nsgroup_VERSION_ARCH.deb in the repository root
#
# Run them as root on a fresh Debian 12 machine with Swift 6 on PATH. install
# into a DESTDIR, and deb, also work as another user once the packages in
# APT_PACKAGES are installed.

SWIFT        ?= swift
SOCKET       ?= /run/nsgroup/nsgroupd.sock
# SwiftPM's scratch directory: every swift command below uses it, so another
# checkout of the build (BUILD_DIR=.build-x) never touches .build.
BUILD_DIR    ?= .build
# The release build is NOT a plain `swift build -c release`: --static-swift-stdlib
# links the Swift runtime into nsgroupd and nsgroup-bench too, so that the
# installed daemon does not need the toolchain's shared libraries. A plain
# `swift build -c release` must link as well (it is what SwiftPM users run):
# `make plain-release` checks that, and `make check` runs it (see there).
RELEASE_FLAGS := -c release --static-swift-stdlib
RELEASE_BIN   = $(BUILD_DIR)/release
SWIFT_SCRATCH = --scratch-path $(BUILD_DIR)

# The project's version, from the one place the programs take it from.
VERSION := $(shell sed -n 's/^public let nsgroupVersion = "\(.*\)"$$/\1/p' Sources/RPC/Methods/MethodName.swift)

# Debian packages the build and the tests need (passt and fuse-overlayfs: create's
# --net pasta and --root overlay; dpkg-dev and lintian: make deb
# and its test; zsh and fish: the completion tests load their scripts; file:
# plain-release; python3-jsonschema: SchemaConformanceTests validates with it;
# openssh-server and openssh-client: the end-to-end tests' own sshd, see deps).
APT_PACKAGES := libsystemd-dev pkg-config systemd util-linux iproute2 iputils-ping procps tmux passwd python3 hyperfine passt \
                fuse-overlayfs dpkg-dev lintian zsh fish file python3-jsonschema systemd-container \
                openssh-server openssh-client

# Unprivileged users the end-to-end tests act as: alice owns groups, bob is a
# stranger, carol is in the admin group, dave is a member by name, erin by
# being in the Unix group nsg-friends.
TEST_USERS := nsg-alice nsg-bob nsg-carol nsg-dave nsg-erin

.PHONY: all deps build release plain-release run check systemd-check test bench journald test-users tun fuse clean install uninstall deb \
        fuzz-build fuzz-seeds fuzz fuzz-check

all: build

# The end-to-end tests start sshd themselves (Tests/EndToEndTests/SSHServer.swift: on
# 127.0.0.1 and a spare port, with their own host key and configuration). Installing
# openssh-server enables, and under systemd starts, the system's ssh service on port 22:
# when deps installs it, deps stops and disables that service again, so that no test can
# come to rely on it and the systemd-check container does not boot one. An openssh-server
# installed before is left as it is.
deps:
	@missing=""; \
	for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing || exit 1; \
	  case " $$missing " in *" openssh-server "*) \
	    echo "deps: stopping and disabling the ssh service openssh-server installed (the tests run their own sshd)"; \
	    if [ -d /run/systemd/system ]; then systemctl disable --now --quiet ssh.service ssh.socket; \
	    else systemctl disable --quiet ssh.service ssh.socket 2>/dev/null; \
	      test -x /etc/init.d/ssh && /etc/init.d/ssh stop >/dev/null 2>&1; fi; \
	    true;; \
	  esac; \
	fi
	@command -v $(SWIFT) >/dev/null || { echo "make: swift not found on PATH (expected Swift 6 at /opt/swift/usr/bin)"; exit 1; }

build: deps
	$(SWIFT) build $(SWIFT_SCRATCH)

release: deps
	$(SWIFT) build $(SWIFT_SCRATCH) $(RELEASE_FLAGS)

# A plain `swift build -c release` of the CLI, the one product whose link
# options (-static-executable, in Package.swift) once needed the Makefile's
# --static-swift-stdlib to link. Its own scratch directory, since SwiftPM
# rebuilds every module when the flags change; only the CLI and what it
# imports (about a minute, not a second full release build). The other
# products have no link options of their own beyond -z relro/now.
PLAIN_BUILD_DIR ?= $(BUILD_DIR)-plain
plain-release: deps
	$(SWIFT) build --scratch-path $(PLAIN_BUILD_DIR) -c release --product nsgroup
	@file -L $(PLAIN_BUILD_DIR)/release/nsgroup | grep -q 'statically linked' || \
	  { echo "make: a plain release build of nsgroup is not statically linked"; exit 1; }

run: release tun fuse
	$(RELEASE_BIN)/nsgroupd --socket $(SOCKET)

# A standalone journald when systemd is not running one: the audit tests read
# their records back with journalctl. `systemd-cat` succeeds only when journald
# really accepts records (a leftover socket file is not enough).
# create --net pasta: pasta opens /dev/net/tun as the group's owner. Debian's
# udev rules make the device 0666; where no udev runs (a container, this CI
# VM) it stays 0600 and nsgroupd refuses pasta networks. The mode that udev
# would give it:
tun:
	@test -c /dev/net/tun || { mkdir -p /dev/net && mknod -m 0666 /dev/net/tun c 10 200; }
	@chmod 0666 /dev/net/tun

# create --root overlay: the holder opens /dev/fuse as the group's owner (the
# kernel wants the descriptor opened in the group's user namespace). Debian's
# udev rules make it 0666, as for /dev/net/tun above.
fuse:
	@test -c /dev/fuse || mknod -m 0666 /dev/fuse c 10 229
	@chmod 0666 /dev/fuse

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
	@# frank has no subordinate ids: a user namespace of his maps one id
	@id -u nsg-frank >/dev/null 2>&1 || useradd --create-home --shell /bin/bash -K SUB_UID_COUNT=0 -K SUB_GID_COUNT=0 nsg-frank

# The release build comes first: the packaging tests package it (they cannot
# build it themselves, since `swift test` holds the lock on the build directory).
check: deps journald test-users tun fuse release plain-release
	$(SWIFT) build $(SWIFT_SCRATCH) --build-tests
	$(SWIFT) test $(SWIFT_SCRATCH)
	$(MAKE) --no-print-directory systemd-check
	$(MAKE) --no-print-directory fuzz-check

# The package under a real systemd as PID 1: Tests/systemd/systemd-check.sh boots
# this machine's own OS in a throwaway systemd-nspawn container, installs the .deb
# and checks socket activation, restart, the watchdog, reload, stop and purge
# against what systemd reports. It fails, never skips, where no container boots.
SYSTEMD_CHECK_DIR := $(BUILD_DIR)/systemd-check
systemd-check: deps test-users
	$(MAKE) --no-print-directory deb DEB_OUTDIR=$(SYSTEMD_CHECK_DIR) >/dev/null
	Tests/systemd/systemd-check.sh $(SYSTEMD_CHECK_DIR)/nsgroup_$(VERSION)_$$(dpkg --print-architecture).deb

test: check

# Speed figures, as ratios against anchors measured in the same run (see README, Performance):
# enter, throughput, scale and cycle, then one summary table. The correctness runs under load
# are separate: $(RELEASE_BIN)/nsgroup-bench load, and nsgroup-bench soak (2 minutes).
bench: release test-users
	$(RELEASE_BIN)/nsgroup-bench all

clean:
	rm -rf $(BUILD_DIR) $(PLAIN_BUILD_DIR)

# ---- Fuzzing -----------------------------------------------------------------
#
#   make fuzz-build   $(FUZZER): libFuzzer + AddressSanitizer (and LeakSanitizer)
#   make fuzz         fuzz for FUZZ_SECONDS (default 600), progress on the terminal
#   make fuzz-check   fuzz for FUZZ_CHECK_SECONDS (default 60), one summary line; make check runs it
#
# Both fail on any crash, broken invariant, leak, timeout or sanitizer report, print the
# end of the log and leave the input that did it in $(FUZZ_DIR)/artifacts/. The target
# (Fuzz/RPCFuzzer/FuzzTarget.swift) runs Sources/TestSupport/ProtocolFuzzDriver.swift: the
# supervisor's path from bytes to a routed call (LineFramer, Routed.route), with its invariants. Keep what it finds,
# minimized, in Fuzz/RPCFuzzer/regressions/: the RPCTests replay every file there.
#
# SwiftPM cannot instrument one target's sources, so the fuzzer is built here with swiftc,
# every file with -sanitize=fuzzer,address, as two modules, the way SwiftPM builds them: RPC
# (exactly Sources/RPC, one object and its .swiftmodule), then the driver, its random number
# generator and the target file as the module RPCFuzzer, which says `import RPC` like the
# TestSupport target does and so sees only RPC's public API. Nothing else of TestSupport (what
# the test suites share) goes in.
# Inputs are at most FUZZ_MAX_LEN (4096) bytes: the driver also frames each input with a
# 64-byte limit and one near its first line's length, which reach every branch of the
# too-long path, so inputs of 1 MiB (slow to mutate) are not needed for it; the 1 MiB
# limit itself is exercised by the 1 MiB inputs in regressions/.

SWIFTC             ?= $(dir $(shell command -v $(SWIFT) 2>/dev/null))swiftc
FUZZ_DIR            = $(BUILD_DIR)/fuzz
FUZZER              = $(FUZZ_DIR)/rpc-fuzzer
FUZZ_SECONDS       ?= 600
FUZZ_CHECK_SECONDS ?= 60
FUZZ_MAX_LEN       ?= 4096
FUZZ_TIMEOUT       ?= 10
FUZZ_RSS_LIMIT_MB  ?= 2048
FUZZ_FLAGS         ?=
FUZZ_RPC_SOURCES    = $(sort $(wildcard Sources/RPC/*.swift Sources/RPC/Methods/*.swift))
FUZZ_RPC_OBJECT     = $(FUZZ_DIR)/RPC.o
FUZZ_DRIVER_SOURCES = Sources/TestSupport/ProtocolFuzzDriver.swift Sources/TestSupport/SplitMix64.swift \
                      $(sort $(wildcard Fuzz/RPCFuzzer/*.swift))
# The RPC target's Swift settings (Package.swift), then the fuzzer's; lld, because gold
# warns about every ASan register helper.
FUZZ_SWIFTFLAGS     = -swift-version 6 -enable-upcoming-feature ExistentialAny \
                      -sanitize=fuzzer,address -parse-as-library -O -g \
                      -module-cache-path $(FUZZ_DIR)/module-cache
FUZZ_RUN            = FUZZ_MAX_LEN=$(FUZZ_MAX_LEN) FUZZ_TIMEOUT=$(FUZZ_TIMEOUT) \
                      FUZZ_RSS_LIMIT_MB=$(FUZZ_RSS_LIMIT_MB) FUZZ_FLAGS="$(FUZZ_FLAGS)" \
                      Fuzz/RPCFuzzer/run-fuzzer.sh $(FUZZER) $(FUZZ_DIR)

$(FUZZ_RPC_OBJECT): $(FUZZ_RPC_SOURCES)
	@mkdir -p $(FUZZ_DIR)
	$(SWIFTC) $(FUZZ_SWIFTFLAGS) -module-name RPC -whole-module-optimization -c $(FUZZ_RPC_SOURCES) \
	  -emit-module -emit-module-path $(FUZZ_DIR)/RPC.swiftmodule -o $@

$(FUZZER): $(FUZZ_RPC_OBJECT) $(FUZZ_DRIVER_SOURCES)
	$(SWIFTC) $(FUZZ_SWIFTFLAGS) -module-name RPCFuzzer -I $(FUZZ_DIR) -use-ld=lld \
	  $(FUZZ_DRIVER_SOURCES) $(FUZZ_RPC_OBJECT) -o $@

fuzz-build: deps $(FUZZER)

# One seed per request the protocol transcripts send.
$(FUZZ_DIR)/corpus-seed.stamp: Fuzz/RPCFuzzer/make-seeds.py $(wildcard protocol/examples/*.jsonl)
	rm -rf $(FUZZ_DIR)/corpus-seed
	python3 Fuzz/RPCFuzzer/make-seeds.py $(FUZZ_DIR)/corpus-seed $(sort $(wildcard protocol/examples/*.jsonl))
	@touch $@

fuzz-seeds: deps $(FUZZ_DIR)/corpus-seed.stamp

fuzz: fuzz-build fuzz-seeds
	$(FUZZ_RUN) $(FUZZ_SECONDS)

fuzz-check: fuzz-build fuzz-seeds
	@$(FUZZ_RUN) $(FUZZ_CHECK_SECONDS) --quiet

# ---- Installing --------------------------------------------------------------
#
#   make install [PREFIX=/usr/local] [DESTDIR=]    builds the release, then installs it
#   make uninstall [PREFIX=...] [DESTDIR=]         removes what install put there
#   make deb                                       nsgroup_$(VERSION)_ARCH.deb in DEB_OUTDIR
#
# NO_BUILD=1 installs (or packages) the release build already in $(RELEASE_BIN)
# without running swift. The packaging tests use it because they run inside
# `swift test`.
#
# nsgroupd reads /etc/nsgroup/nsgroupd.conf and finds nsgroup-holder in
# ../libexec/nsgroup/ beside its own directory, whatever the prefix.
#
# Where the programs go: nsgroup, the users' command, in bin/. nsgroupd is a
# root-only daemon that users never run, so it goes in sbin/, like other
# daemons (systemd starts it as $(SBINDIR)/nsgroupd). nsgroup-holder is an
# internal helper that only nsgroupd execs: libexec/nsgroup/ (from sbin/,
# ../libexec/nsgroup/ is the same place as from bin/).
#
# The programs are installed stripped (STRIP, --strip-unneeded, and the
# .comment section): nsgroupd 31.9 MB → 16.6 MB, nsgroup 27.3 MB → 15.5 MB,
# nsgroup-holder 840 KB → 692 KB (what is left is mostly the static Swift
# runtime and Foundation). `make install` installs no debug info: the
# unstripped programs stay in $(RELEASE_BIN), and the build id both carry
# lets gdb match a core dump of an installed program with them. `make deb`
# also builds nsgroup-dbgsym_VERSION_ARCH.deb: the debug info by build id
# under /usr/lib/debug/.build-id/, as in Debian's -dbgsym packages. systemd
# reads units, tmpfiles.d, sysusers.d and catalogs under /usr/local/lib as
# well as /usr/lib, so the default prefix works as is. For PREFIX=/usr, the
# units go where the distribution keeps them (/lib/systemd/system on Debian 12).

PREFIX       ?= /usr/local
DESTDIR      ?=
BINDIR       ?= $(PREFIX)/bin
SBINDIR      ?= $(PREFIX)/sbin
LIBEXECDIR   ?= $(PREFIX)/libexec
DATADIR      ?= $(PREFIX)/share
MANDIR       ?= $(DATADIR)/man
DOCDIR       ?= $(DATADIR)/doc/nsgroup
# Not a choice: nsgroupd reads /etc/nsgroup/nsgroupd.conf, whatever the prefix.
SYSCONFDIR   := /etc
UNITDIR      ?= $(if $(filter /usr,$(PREFIX)),$(or $(shell pkg-config --variable=systemdsystemunitdir systemd 2>/dev/null),/usr/lib/systemd/system),$(PREFIX)/lib/systemd/system)
TMPFILESDIR  ?= $(PREFIX)/lib/tmpfiles.d
SYSUSERSDIR  ?= $(PREFIX)/lib/sysusers.d
CATALOGDIR   ?= $(PREFIX)/lib/systemd/catalog
BASHCOMPDIR  ?= $(DATADIR)/bash-completion/completions
# Debian's zsh searches vendor-completions; elsewhere zsh searches site-functions.
ZSHCOMPDIR   ?= $(if $(filter /usr,$(PREFIX)),$(DATADIR)/zsh/vendor-completions,$(DATADIR)/zsh/site-functions)
FISHCOMPDIR  ?= $(DATADIR)/fish/vendor_completions.d

STRIP        ?= strip
DEB_OUTDIR   ?= .
DEB_STAGE    ?= $(BUILD_DIR)/deb-root

# Every file install puts down, for uninstall (the configuration file is handled apart).
INSTALLED_FILES = \
	$(SBINDIR)/nsgroupd $(BINDIR)/nsgroup $(LIBEXECDIR)/nsgroup/nsgroup-holder \
	$(MANDIR)/man1/nsgroup.1 $(MANDIR)/man8/nsgroupd.8 $(MANDIR)/man8/nsgroup-holder.8 \
	$(BASHCOMPDIR)/nsgroup $(ZSHCOMPDIR)/_nsgroup $(FISHCOMPDIR)/nsgroup.fish \
	$(UNITDIR)/nsgroupd.service $(UNITDIR)/nsgroupd.socket $(UNITDIR)/nsgroup.slice \
	$(TMPFILESDIR)/nsgroup.conf $(SYSUSERSDIR)/nsgroup.conf $(CATALOGDIR)/nsgroup.catalog \
	$(DOCDIR)/README.md $(DOCDIR)/PROTOCOL.md
CONFIG_FILE = $(SYSCONFDIR)/nsgroup/nsgroupd.conf

# Paths the installed man pages and units name.
SUBSTITUTE = sed -e 's|@VERSION@|$(VERSION)|g' -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
                 -e 's|^ExecStart=/usr/sbin/nsgroupd|ExecStart=$(SBINDIR)/nsgroupd|'
# The installed programs, stripped as Debian ships them (see above).
PROGRAMS   = $(SBINDIR)/nsgroupd $(BINDIR)/nsgroup $(LIBEXECDIR)/nsgroup/nsgroup-holder

install: $(if $(NO_BUILD),,release)
	@for p in nsgroupd nsgroup nsgroup-holder; do \
	  test -x $(RELEASE_BIN)/$$p || { echo "make: $(RELEASE_BIN)/$$p is missing: run make release"; exit 1; }; \
	done
	install -d -m 0755 $(DESTDIR)$(BINDIR) $(DESTDIR)$(SBINDIR) $(DESTDIR)$(LIBEXECDIR)/nsgroup \
	  $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR) $(DESTDIR)$(FISHCOMPDIR) \
	  $(DESTDIR)$(UNITDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(CATALOGDIR) \
	  $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/nsgroup
	install -m 0755 $(RELEASE_BIN)/nsgroupd $(DESTDIR)$(SBINDIR)/
	install -m 0755 $(RELEASE_BIN)/nsgroup $(DESTDIR)$(BINDIR)/
	install -m 0755 $(RELEASE_BIN)/nsgroup-holder $(DESTDIR)$(LIBEXECDIR)/nsgroup/
	$(STRIP) --strip-unneeded --remove-section=.comment $(addprefix $(DESTDIR),$(PROGRAMS))
	$(SUBSTITUTE) packaging/man/nsgroup.1 >$(DESTDIR)$(MANDIR)/man1/nsgroup.1
	$(SUBSTITUTE) packaging/man/nsgroupd.8 >$(DESTDIR)$(MANDIR)/man8/nsgroupd.8
	$(SUBSTITUTE) packaging/man/nsgroup-holder.8 >$(DESTDIR)$(MANDIR)/man8/nsgroup-holder.8
	$(RELEASE_BIN)/nsgroup --generate-completion-script bash >$(DESTDIR)$(BASHCOMPDIR)/nsgroup
	sed -i '1{/^#!/d;}' $(DESTDIR)$(BASHCOMPDIR)/nsgroup # sourced by bash-completion, never run
	$(RELEASE_BIN)/nsgroup --generate-completion-script zsh >$(DESTDIR)$(ZSHCOMPDIR)/_nsgroup
	$(RELEASE_BIN)/nsgroup --generate-completion-script fish >$(DESTDIR)$(FISHCOMPDIR)/nsgroup.fish
	$(SUBSTITUTE) packaging/systemd/nsgroupd.service >$(DESTDIR)$(UNITDIR)/nsgroupd.service
	$(SUBSTITUTE) packaging/systemd/nsgroupd.socket >$(DESTDIR)$(UNITDIR)/nsgroupd.socket
	install -m 0644 packaging/systemd/nsgroup.slice $(DESTDIR)$(UNITDIR)/nsgroup.slice
	install -m 0644 packaging/tmpfiles.d/nsgroup.conf $(DESTDIR)$(TMPFILESDIR)/nsgroup.conf
	install -m 0644 packaging/sysusers.d/nsgroup.conf $(DESTDIR)$(SYSUSERSDIR)/nsgroup.conf
	install -m 0644 packaging/catalog/nsgroup.catalog $(DESTDIR)$(CATALOGDIR)/nsgroup.catalog
	install -m 0644 README.md protocol/PROTOCOL.md $(DESTDIR)$(DOCDIR)/
	chmod 0644 $(addprefix $(DESTDIR),$(filter-out $(PROGRAMS),$(INSTALLED_FILES)))
	@# An existing configuration is the administrator's: never overwrite it.
	@if [ -e $(DESTDIR)$(CONFIG_FILE) ]; then \
	  echo "keeping the existing $(DESTDIR)$(CONFIG_FILE)"; \
	else \
	  echo "install -m 0644 packaging/config/nsgroupd.conf $(DESTDIR)$(CONFIG_FILE)"; \
	  install -m 0644 packaging/config/nsgroupd.conf $(DESTDIR)$(CONFIG_FILE); \
	fi
	@if [ -z "$(DESTDIR)" ]; then \
	  echo; \
	  echo "Installed. To register and start nsgroup:"; \
	  echo "  systemd-sysusers nsgroup.conf && systemd-tmpfiles --create nsgroup.conf"; \
	  echo "  journalctl --update-catalog"; \
	  echo "  systemctl daemon-reload && systemctl enable --now nsgroupd.socket"; \
	fi

uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@# The configuration goes only if it is still the default one.
	@if [ -e $(DESTDIR)$(CONFIG_FILE) ]; then \
	  if cmp -s packaging/config/nsgroupd.conf $(DESTDIR)$(CONFIG_FILE); then \
	    echo "rm -f $(DESTDIR)$(CONFIG_FILE)"; rm -f $(DESTDIR)$(CONFIG_FILE); \
	  else \
	    echo "keeping $(DESTDIR)$(CONFIG_FILE): it was changed"; \
	  fi; \
	fi
	-rmdir $(DESTDIR)$(LIBEXECDIR)/nsgroup $(DESTDIR)$(DOCDIR) $(DESTDIR)$(SYSCONFDIR)/nsgroup 2>/dev/null

# The .deb is made from a staged `make install PREFIX=/usr` by
# packaging/debian/build-deb.sh: control fields, maintainer scripts, conffiles,
# compressed man pages (the programs come stripped from install).
deb: $(if $(NO_BUILD),,release)
	rm -rf $(DEB_STAGE)
	$(MAKE) --no-print-directory install NO_BUILD=1 PREFIX=/usr DESTDIR=$(abspath $(DEB_STAGE)) >/dev/null
	packaging/debian/build-deb.sh $(DEB_STAGE) $(DEB_OUTDIR) $(VERSION) $(RELEASE_BIN)
