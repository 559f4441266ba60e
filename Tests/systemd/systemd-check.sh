#!/bin/bash
# make systemd-check: the installed package under a real systemd as PID 1.
#
# Boots this machine's own Debian in a throwaway container (systemd-nspawn -b, no
# network, nothing downloaded): the root a tmpfs, /usr, /etc and /var writable
# overlays of the host's whose changes are dropped at the end. Installs the .deb
# given as $1 in it with dpkg, then checks, against what systemd itself reports,
# every claim the unit files and the README make about systemd. Prints one line per
# check ("ok" or "FAIL") and exits non-zero if any failed, or if the container cannot
# boot: it never skips.
#
# Usage: Tests/systemd/systemd-check.sh PATH/TO/nsgroup_VERSION_ARCH.deb
set -u

deb=${1:?usage: $0 PACKAGE.deb}
deb=$(readlink -f "$deb")
[ -f "$deb" ] || { echo "systemd-check: no package at $deb"; exit 2; }
[ "$(id -u)" = 0 ] || { echo "systemd-check: run as root (it boots a container)"; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "systemd-check: systemd-nspawn is missing (apt-get install systemd-container)"; exit 2; }

machine=nsgroup-check-$$
log=$(mktemp /tmp/nsgroup-systemd-check.XXXXXX)
# The overlays' upper layers: ours, so that a run killed half-way leaves nothing nspawn
# would have to clean up, and the next run removes what it finds of a killed one.
rm -rf /var/tmp/nsgroup-systemd-check.*
work=$(mktemp -d /var/tmp/nsgroup-systemd-check.XXXXXX)
mkdir "$work"/usr "$work"/etc "$work"/var
passes=0
fails=0

ok() { echo "ok   - $*"; passes=$((passes + 1)); }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
# expect DESCRIPTION GOT WANTED
expect() { if [ "$2" = "$3" ]; then ok "$1"; else bad "$1: got '$2', expected '$3'"; fi; }
# expect_true DESCRIPTION COMMAND...: the command succeeds
expect_true() { local what=$1; shift; if "$@"; then ok "$what"; else bad "$what (failed: $*)"; fi; }

# ---- boot ------------------------------------------------------------------------
# Masked: host services that would only slow the boot down (a database, timers).
masks=(systemd.mask=postgresql.service systemd.mask=postgresql@15-main.service
       systemd.mask=apt-daily.timer systemd.mask=apt-daily-upgrade.timer systemd.mask=man-db.timer
       systemd.mask=e2scrub_all.timer systemd.mask=fstrim.timer systemd.mask=logrotate.timer)
started=$(date +%s%N)
systemd-nspawn --quiet -D / --volatile=yes --overlay=/usr:"$work"/usr:/usr --overlay=/etc:"$work"/etc:/etc \
    --overlay=/var:"$work"/var:/var \
    --bind-ro="$deb":/mnt/nsgroup.deb --register=no --keep-unit -M "$machine" --private-network \
    -b -- "${masks[@]}" "nsgroup.check=$$" >"$log" 2>&1 </dev/null &
nspawn=$!

cleanup() {
    # The container's init halts on SIGRTMIN+3; nspawn then removes its overlays.
    [ -z "${init:-}" ] && init=$(find_init)
    [ -n "${init:-}" ] && kill -RTMIN+3 "$init" 2>/dev/null
    for _ in $(seq 150); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$nspawn" 2>/dev/null
    # An init that outlived a killed nspawn would keep the whole container running; it
    # carries this run's mark among its arguments.
    [ -n "${init:-}" ] && kill -KILL "$init" 2>/dev/null
    pkill -KILL -f "nsgroup[.]check=$$\$" 2>/dev/null
    wait "$nspawn" 2>/dev/null
    rm -rf "$log" "$work"
}
trap cleanup EXIT

# The container's PID 1: a systemd that is nspawn's child (or, depending on its
# options, its child's).
find_init() {
    local child found
    for child in $(pgrep -P "$nspawn"); do
        if [ "$(cat /proc/"$child"/comm 2>/dev/null)" = systemd ]; then echo "$child"; return; fi
        found=$(pgrep -P "$child" -x systemd | head -1)
        if [ -n "$found" ]; then echo "$found"; return; fi
    done
}
init=
for _ in $(seq 200); do
    init=$(find_init)
    [ -n "$init" ] && break
    kill -0 "$nspawn" 2>/dev/null || break
    sleep 0.05
done
if [ -z "$init" ]; then
    echo "systemd-check: the container did not start systemd; systemd-nspawn said:"
    cat "$log"
    exit 1
fi
# inside COMMAND...: runs a command inside the container (every namespace of its init).
inside() { nsenter -t "$init" -a "$@"; }
# as USER COMMAND...: the same as an ordinary user, with that user's groups.
as() { local user=$1; shift; inside setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"; }
# systemctl answers once init has its private socket; then it waits for the boot to end.
for _ in $(seq 300); do
    state=$(inside timeout 60 systemctl is-system-running --wait 2>&1)
    case "$state" in *"Failed to connect"*) sleep 0.1 ;; *) break ;; esac
done
booted=$(( ($(date +%s%N) - started) / 1000000 ))
if [ "$state" != running ] && [ "$state" != degraded ]; then
    echo "systemd-check: the container's systemd did not come up ($state); systemd-nspawn said:"
    cat "$log"
    exit 1
fi
echo "# systemd $(inside systemctl --version | head -1 | cut -d' ' -f2) is PID 1 in the container (up in ${booted} ms, $state)"
[ "$state" = degraded ] && echo "# failed units: $(inside systemctl --failed --no-legend --plain | cut -d' ' -f1 | tr '\n' ' ')"

show() { inside systemctl show -p "$1" --value "${2:-nsgroupd.service}"; }
main_pid() { show MainPID; }
# wait_for DESCRIPTION SECONDS COMMAND...: until the command succeeds, or fail
wait_for() {
    local what=$1 seconds=$2; shift 2
    local deadline=$(( $(date +%s) + seconds ))
    while ! "$@" 2>/dev/null; do
        if [ "$(date +%s)" -ge "$deadline" ]; then bad "$what (not within ${seconds} s)"; return 1; fi
        sleep 0.1
    done
    ok "$what"
}

# ---- install ---------------------------------------------------------------------
# A policy-rc.d that forbids starting services (container images ship one, and the
# container's /usr is the host's) would keep dpkg from starting the socket: a real
# machine has none.
inside rm -f /usr/sbin/policy-rc.d
if ! inside env DEBIAN_FRONTEND=noninteractive dpkg -i /mnt/nsgroup.deb >/tmp/nsgroup-systemd-check-dpkg.$$ 2>&1; then
    bad "dpkg -i the package"; cat /tmp/nsgroup-systemd-check-dpkg.$$
else
    ok "dpkg -i the package"
fi
rm -f /tmp/nsgroup-systemd-check-dpkg.$$

# sysusers and tmpfiles did their work.
expect "sysusers made the admin group" "$(inside getent group nsgroup-admin | cut -d: -f1)" nsgroup-admin
expect "tmpfiles made /run/nsgroup (0755 root)" "$(inside stat -c '%a %U' /run/nsgroup)" "755 root"
expect "tmpfiles made /run/nsgroup/groups (0700 root)" "$(inside stat -c '%a %U' /run/nsgroup/groups)" "700 root"
expect "the socket is enabled" "$(inside systemctl is-enabled nsgroupd.socket)" enabled
expect "the socket is listening" "$(inside systemctl is-active nsgroupd.socket)" active
expect "the socket is 0666" "$(inside stat -c '%a' /run/nsgroup/nsgroupd.sock)" 666
expect "no supervisor runs before anyone asks" "$(inside systemctl is-active nsgroupd.service)" inactive

# ---- socket activation -----------------------------------------------------------
listed=$(as nsg-alice nsgroup list 2>&1)
expect "nsg-alice's nsgroup list starts the supervisor through the socket" "$?" 0
expect "the supervisor is active" "$(inside systemctl is-active nsgroupd.service)" active
first=$(main_pid)
expect_true "it has a main pid" test "$first" -gt 0
expect "it was socket-activated (its listening socket came from systemd)" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'socket from systemd')" 1

# The container's v1 hierarchies are read-only: the supervisor leaves them alone, and says
# which per-user limits of its configuration it therefore cannot hold.
expect "controllers in read-only v1 hierarchies are not used (describe)" \
    "$(as nsg-alice nsgroup describe --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["features"]["controllers"])')" \
    "{'memory': 'none', 'pids': 'none', 'cpu': 'none'}"
expect "the journal says pids-per-user is not enforced here" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'limits.pids-per-user is not enforced' | sed 's/^[1-9][0-9]*$/yes/')" yes

# A group with a session running in it, as nsg-alice.
as nsg-alice nsgroup create web >/dev/null
as nsg-alice nsgroup enter web -- sleep 100000 </dev/null >/dev/null 2>/tmp/nsgroup-systemd-check-enter.$$ &
client=$!
holder=$(as nsg-alice nsgroup inspect web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"])')
session_pid() { as nsg-alice nsgroup inspect web --json | python3 -c 'import json,sys; s=json.load(sys.stdin)["sessions"]; print(s[0]["pid"] if s else "")'; }
has_session() { [ -n "$(session_pid)" ]; }
wait_for "nsg-alice's session runs in group web" 10 has_session \
    || { echo "# nsgroup enter said: $(cat /tmp/nsgroup-systemd-check-enter.$$)"; exit 1; }
rm -f /tmp/nsgroup-systemd-check-enter.$$
session=$(session_pid)
# survives DESCRIPTION: the group, its holder and its session are all still there
survives() {
    expect "$1: group web is listed" "$(as nsg-alice nsgroup list --json | python3 -c 'import json,sys; print([g["name"] for g in json.load(sys.stdin)["groups"]])')" "['web']"
    expect "$1: the same holder" "$(as nsg-alice nsgroup inspect web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"])')" "$holder"
    expect "$1: the same session, still running" "$(session_pid)" "$session"
    expect_true "$1: the holder's process is alive" inside kill -0 "$holder"
}

# ---- each group a unit of its own ------------------------------------------------
# systemd is PID 1: group web is the scope nsgroup-web.scope in nsg-alice's slice,
# with its holder and sessions in leaves of the scope's cgroup.
uid=$(inside id -u nsg-alice)
scope=nsgroup-web.scope
cgroup=/nsgroup.slice/nsgroup-$uid.slice/$scope
# unified_of PID: the process's cgroup in the unified hierarchy
unified_of() { inside sed -n 's/^0:://p' /proc/"$1"/cgroup; }
expect "group web is a unit: $scope is active" "$(inside systemctl is-active $scope)" active
expect "the scope is in nsg-alice's slice" "$(show Slice $scope)" "nsgroup-$uid.slice"
expect "the scope's cgroup (systemctl show)" "$(show ControlGroup $scope)" "$cgroup"
expect "the scope is delegated to nsgroupd (Delegate=yes)" "$(show Delegate $scope)" yes
expect_true "nsgroup.slice bounds all groups together (TasksMax, 15% of pid_max)" \
    test "$(show TasksMax nsgroup.slice)" -gt 0 -a "$(show TasksMax nsgroup.slice)" -lt "$(inside cat /proc/sys/kernel/pid_max)"
expect "the scope's description names the group and its owner" "$(show Description $scope)" "nsgroup group web of nsg-alice"
expect "inspect shows the scope's cgroup" \
    "$(as nsg-alice nsgroup inspect web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cgroup"])')" "$cgroup"
expect "the holder is in the scope's holder leaf" "$(unified_of "$holder")" "$cgroup/holder"
expect_true "the session is in a session leaf of the scope" \
    sh -c "unified=\$(nsenter -t $init -a sed -n 's/^0:://p' /proc/$session/cgroup); case \$unified in $cgroup/session-*) ;; *) exit 1 ;; esac"
expect "the group's limits are the unit's properties (none asked: infinity, not systemd's default)" \
    "$(show MemoryMax $scope) $(show TasksMax $scope)" "infinity infinity"
expect "the anchor the scope was started around is gone" "$(inside pgrep -x nsgroup-anchor)" ""
unified_mount=$(inside findmnt -t cgroup2 -n -o TARGET | head -1)
expect "only the supervisor runs in nsgroupd.service's cgroup" \
    "$(inside sh -c "find $unified_mount$(show ControlGroup) -name cgroup.procs -exec cat {} +")" "$(main_pid)"
expect_true "systemd-cgls shows the group as a unit" sh -c "nsenter -t $init -a systemd-cgls --no-pager | grep -q $scope"
expect_true "systemctl status of the scope lists its holder" \
    sh -c "nsenter -t $init -a systemctl status $scope --no-pager | grep -q 'nsgroup-holder'"
# journald charges a session's log lines to its group's unit (the scope's own rate limit).
# (The logger lives on a while after its line, waiting for the end of its input: journald
# learns a sender's cgroup from /proc/PID when the line arrives, and a sender gone by then
# has none.)
as nsg-alice nsgroup enter web -- sh -c '{ echo "a line from group web"; sleep 2; } | logger -t nsgroup-check' </dev/null >/dev/null 2>&1
logged() { [ "$(inside journalctl _SYSTEMD_UNIT=$scope -t nsgroup-check -o cat --no-pager)" = "a line from group web" ]; }
wait_for "journald attributes a session's log line to $scope" 10 logged
expect_true "journalctl -u $scope shows nsgroupd's records about the group (OBJECT_SYSTEMD_UNIT)" \
    sh -c "nsenter -t $init -a journalctl -u $scope -o cat --no-pager | grep -q 'Created group web '"
expect "the start-up record says groups are units (NSGROUP_UNITS)" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager MESSAGE_ID=3096b031050d47769ccaae0896b855c5 | grep -c 'each group a scope in nsgroup.slice' | sed 's/^[1-9][0-9]*$/yes/')" yes

# A member's sessions in web run in a scope of the member's, in the member's own slice:
# charged to nsg-bob, with web's limits, and his log lines are his scope's.
bob=$(inside id -u nsg-bob)
guest_scope="nsgroup-web:$bob.scope"
as nsg-alice nsgroup share web nsg-bob >/dev/null
as nsg-bob nsgroup enter web -- sleep 100001 </dev/null >/dev/null 2>&1 &
guest_active() { [ "$(inside systemctl is-active "$guest_scope")" = active ]; }
wait_for "nsg-bob's session in web starts his scope $guest_scope" 10 guest_active
bob_sleep() { inside pgrep -u nsg-bob -x -f "sleep 100001"; }
wait_for "nsg-bob's session runs" 10 bob_sleep
bob_session=$(bob_sleep)
expect "the member's scope is in his own slice" "$(show Slice "$guest_scope")" "nsgroup-$bob.slice"
expect "the member's scope has web's limits as properties" "$(show MemoryMax "$guest_scope") $(show TasksMax "$guest_scope")" "infinity infinity"
expect_true "his session is in a session leaf of his scope" \
    sh -c "case \$(nsenter -t $init -a sed -n 's/^0:://p' /proc/$bob_session/cgroup) in /nsgroup.slice/nsgroup-$bob.slice/$guest_scope/session-*) ;; *) exit 1 ;; esac"
as nsg-bob nsgroup enter web -- sh -c '{ echo "a line from nsg-bob in web"; sleep 2; } | logger -t nsgroup-check' </dev/null >/dev/null 2>&1
bob_logged() { [ "$(inside journalctl "_SYSTEMD_UNIT=$guest_scope" -t nsgroup-check -o cat --no-pager)" = "a line from nsg-bob in web" ]; }
wait_for "journald attributes the member's log line to his scope" 10 bob_logged
expect "no anchor is left" "$(inside pgrep -x nsgroup-anchor)" ""
expect "still only the supervisor runs in nsgroupd.service's cgroup" \
    "$(inside sh -c "find $unified_mount$(show ControlGroup) -name cgroup.procs -exec cat {} +")" "$(main_pid)"

# A second nsgroupd on the same machine (its own socket and state, as a test's or a
# benchmark's) makes units too: neither takes the other's scopes for strays, and a group
# name the other has is refused, not fought over.
inside systemd-run --quiet --unit=nsgroupd-second -p Delegate=yes -p KillMode=process \
    /usr/sbin/nsgroupd --socket /run/nsgroup-second.sock --state-dir /run/nsgroup-second
second_up() { inside test -S /run/nsgroup-second.sock; }
wait_for "a second nsgroupd starts" 10 second_up
expect "the second nsgroupd's start leaves the first one's scope alone" \
    "$(inside systemctl is-active $scope)/$(unified_of "$holder")" "active/$cgroup/holder"
as nsg-alice nsgroup --socket /run/nsgroup-second.sock create other >/dev/null
expect "the second nsgroupd's group is a unit too" "$(inside systemctl is-active nsgroup-other.scope)" active
refused=$(as nsg-alice nsgroup --socket /run/nsgroup-second.sock create web 2>&1)
expect "a name the first nsgroupd has a unit for is refused by the second" \
    "$(echo "$refused" | grep -c "nsgroup-web.scope exists and is not this nsgroupd's")" 1
expect "and the first one's group web runs on, untouched" \
    "$(inside systemctl is-active $scope)/$(session_pid)" "active/$session"
other_holder=$(as nsg-alice nsgroup --socket /run/nsgroup-second.sock inspect other --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"])')

# ---- restart ---------------------------------------------------------------------
inside systemctl restart nsgroupd.service
second=$(main_pid)
expect_true "systemctl restart: a new supervisor" test "$second" -gt 0 -a "$second" != "$first"
survives "systemctl restart"
expect "systemctl restart is no failure (NRestarts)" "$(show NRestarts)" 0

# restarted N: systemd counts N restarts of its own (Restart=) and the service is active again
restarted() { [ "$(show NRestarts)" = "$1" ] && [ "$(inside systemctl is-active nsgroupd.service)" = active ]; }

# ---- kill -9: Restart=on-failure -------------------------------------------------
inside kill -KILL "$second"
wait_for "kill -9: systemd starts the supervisor again" 15 restarted 1
third=$(main_pid)
expect_true "kill -9: a new main pid" test "$third" -gt 0 -a "$third" != "$second"
survives "kill -9"

# ---- the watchdog ----------------------------------------------------------------
# WatchdogSec=30s in the unit; a drop-in makes it 2 s here (and gives an aborted
# supervisor 2 s before SIGKILL), so that the check takes seconds, not minutes.
inside mkdir -p /run/systemd/system/nsgroupd.service.d
inside sh -c 'printf "[Service]\nWatchdogSec=2s\nTimeoutAbortSec=2s\n" > /run/systemd/system/nsgroupd.service.d/watchdog.conf'
inside systemctl daemon-reload
inside systemctl restart nsgroupd.service
hung=$(main_pid)
expect "the supervisor pings the watchdog (WatchdogUSec)" "$(show WatchdogUSec)" 2s
sleep 3
expect "a supervisor that pings is left alone" "$(main_pid)" "$hung"
# (An explicit start or restart sets NRestarts back to 0.)
restarts=$(show NRestarts)
inside kill -STOP "$hung"
wait_for "a hung supervisor (SIGSTOP) is killed by the watchdog and started again" 30 restarted $((restarts + 1))
echo "# after the watchdog: NRestarts=$(show NRestarts) $(inside systemctl is-active nsgroupd.service) MainPID=$(main_pid) (was $hung)"
expect "the watchdog is what ended it" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'Watchdog timeout')" 1
survives "watchdog"
inside rm /run/systemd/system/nsgroupd.service.d/watchdog.conf
inside systemctl daemon-reload

# ---- reload ----------------------------------------------------------------------
before=$(main_pid)
inside sh -c 'cp /etc/nsgroup/nsgroupd.conf /tmp/nsgroupd.conf.orig; printf "\n[limits]\ngroups-per-user = 1\n" >> /etc/nsgroup/nsgroupd.conf'
inside systemctl reload nsgroupd.service
sleep 0.5
refused=$(as nsg-alice nsgroup create second 2>&1)
expect "systemctl reload re-reads nsgroupd.conf (groups-per-user = 1 refuses a second group)" \
    "$(echo "$refused" | grep -c 'groups-per-user = 1')" 1
expect "the reload is journalled" "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'Reloaded policy from /etc/nsgroup/nsgroupd.conf')" 1
inside sh -c 'echo "[nonsense" >> /etc/nsgroup/nsgroupd.conf'
inside systemctl reload nsgroupd.service
sleep 0.5
expect "a broken file: the reload is refused and logged" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'Failed to reload policy')" 1
expect "a broken file: the supervisor runs on" "$(inside systemctl is-active nsgroupd.service)/$(main_pid)" "active/$before"
inside sh -c 'cp /tmp/nsgroupd.conf.orig /etc/nsgroup/nsgroupd.conf'
inside systemctl reload nsgroupd.service

# ---- stop and start --------------------------------------------------------------
# The client of the session would connect again at once (to hear how its session
# ends), and through the socket start the supervisor again: it goes first (SIGKILL:
# SIGTERM it would pass on to the session).
pkill -KILL -f "nsgroup enter web -- sleep 10000[01]"
inside systemctl stop nsgroupd.service
expect "systemctl stop: the supervisor is stopped" "$(inside systemctl is-active nsgroupd.service)" inactive
expect_true "systemctl stop leaves the holder running (KillMode=process)" inside kill -0 "$holder"
expect_true "systemctl stop leaves the session running" inside kill -0 "$session"
inside systemctl start nsgroupd.service
survives "systemctl start"

# ---- the unit, after the supervisor's restarts ----------------------------------
expect "the first nsgroupd's restarts left the second one's group alone" \
    "$(inside systemctl is-active nsgroup-other.scope)" active
expect_true "its holder runs on" inside kill -0 "$other_holder"
as nsg-alice nsgroup --socket /run/nsgroup-second.sock destroy other >/dev/null
inside systemctl stop nsgroupd-second.service
expect "after the restarts group web is still its scope" "$(inside systemctl is-active $scope)/$(unified_of "$holder")" "active/$cgroup/holder"
expect "no process of a group was ever left in nsgroupd.service (no \"left-over process\" from systemd)" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager | grep -c 'Found left-over process')" 0

expect "after the restarts nsg-bob's session runs on in his scope" \
    "$(inside systemctl is-active "$guest_scope")/$(bob_sleep)" "active/$bob_session"
inside kill "$bob_session"
guest_gone() { [ "$(inside systemctl is-active "$guest_scope")" != active ]; }
wait_for "his last session ended: systemd lets his scope go" 10 guest_gone
expect "group web runs on without it" "$(inside systemctl is-active $scope)" active
as nsg-bob nsgroup enter web -- true </dev/null >/dev/null 2>&1
expect "his next session starts a scope again (exit status of enter)" "$?" 0

# systemctl kill of a group's unit ends the group: its holder dies, nsgroupd says so.
as nsg-alice nsgroup create doomed >/dev/null
doomed_holder=$(as nsg-alice nsgroup inspect doomed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["holder"])')
expect "group doomed is a unit too" "$(inside systemctl is-active nsgroup-doomed.scope)" active
inside systemctl kill --signal=KILL nsgroup-doomed.scope
doomed_gone() { ! as nsg-alice nsgroup list --json | grep -q '"doomed"'; }
wait_for "systemctl kill nsgroup-doomed.scope: the group ends" 10 doomed_gone
expect_true "systemctl kill: its holder is gone" sh -c "! nsenter -t $init -a kill -0 $doomed_holder 2>/dev/null"
scope_gone() { [ "$(inside systemctl is-active nsgroup-doomed.scope)" != active ]; }
wait_for "systemctl kill: systemd lets the scope go" 10 scope_gone
as nsg-alice nsgroup create doomed >/dev/null 2>&1
expect "a killed scope is collected: a new group of its name is a unit again" "$(inside systemctl is-active nsgroup-doomed.scope)" active
inside systemctl stop nsgroup-doomed.scope
wait_for "systemctl stop nsgroup-doomed.scope: the group ends" 10 doomed_gone
# destroy, then a new group of the same name: a new scope (the old one goes first).
as nsg-alice nsgroup create again >/dev/null
as nsg-alice nsgroup destroy again >/dev/null
expect "destroy then create of the same name: a new scope" \
    "$(as nsg-alice nsgroup create again >/dev/null 2>&1; inside systemctl is-active nsgroup-again.scope)" active
as nsg-alice nsgroup destroy again >/dev/null
again_gone() { [ "$(inside systemctl is-active nsgroup-again.scope)" != active ]; }
wait_for "destroy: the scope goes" 10 again_gone

# cycles MODE: ten create + destroy of a group, in ms each (a figure, not a check).
cycles() {
    local began=$(date +%s%N)
    for i in $(seq 10); do as nsg-alice nsgroup create "cycle$i" >/dev/null && as nsg-alice nsgroup destroy "cycle$i" >/dev/null; done
    echo $(( ($(date +%s%N) - began) / 10000000 ))
}
as_unit=$(cycles)
# ---- --no-units under systemd -----------------------------------------------------
# Groups stay in nsgroupd's own cgroup; a group that is a unit already is taken back as one.
inside sh -c 'printf "[Service]\nExecStart=\nExecStart=/usr/sbin/nsgroupd --no-units\n" > /run/systemd/system/nsgroupd.service.d/no-units.conf'
inside systemctl daemon-reload
inside systemctl restart nsgroupd.service
expect "--no-units: group web is taken back as its scope" \
    "$(as nsg-alice nsgroup inspect web --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cgroup"])')/$(inside systemctl is-active $scope)" "$cgroup/active"
as nsg-alice nsgroup create plain >/dev/null
expect "--no-units: a new group is below nsgroupd's own cgroup" \
    "$(as nsg-alice nsgroup inspect plain --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["cgroup"])')" \
    "/system.slice/nsgroupd.service/users/$uid/group-plain"
expect "--no-units: it is no unit" "$(inside systemctl is-active nsgroup-plain.scope)" inactive
expect "--no-units: the start-up record says so" \
    "$(inside journalctl -u nsgroupd -o cat --no-pager MESSAGE_ID=3096b031050d47769ccaae0896b855c5 | tail -1 | grep -c "groups below nsgroupd's own cgroup (--no-units)")" 1
as nsg-alice nsgroup destroy plain >/dev/null
echo "# create + destroy of a group, from the CLI: ${as_unit} ms as a unit, $(cycles) ms with --no-units"
inside rm /run/systemd/system/nsgroupd.service.d/no-units.conf
inside systemctl daemon-reload
inside systemctl restart nsgroupd.service

# ---- the journal -----------------------------------------------------------------
expect "journalctl -u nsgroupd -x explains records with the catalog" \
    "$(inside journalctl -u nsgroupd -x --no-pager | grep -c 'Subject: nsgroupd started' | sed 's/^[1-9][0-9]*$/yes/')" yes
security=$(inside systemd-analyze security nsgroupd.service --no-pager 2>/dev/null | sed -n 's/.*Overall exposure level for nsgroupd.service: \([0-9.]*\).*/\1/p')
expect_true "systemd-analyze security rates the live unit" test -n "$security"
echo "# systemd-analyze security nsgroupd.service: ${security:-?}"

# ---- purge -----------------------------------------------------------------------
as nsg-alice nsgroup destroy web >/dev/null
inside env DEBIAN_FRONTEND=noninteractive dpkg --purge nsgroup >/dev/null 2>&1
expect "dpkg --purge: the package is gone" "$(inside dpkg-query -W -f='${Status}' nsgroup 2>/dev/null)" ""
left=$(inside sh -c 'ls -d /etc/nsgroup /usr/sbin/nsgroupd /usr/bin/nsgroup /usr/libexec/nsgroup /lib/systemd/system/nsgroupd.service /lib/systemd/system/nsgroupd.socket /lib/systemd/system/nsgroup.slice /usr/lib/systemd/system/nsgroupd.service /etc/systemd/system/sockets.target.wants/nsgroupd.socket /run/nsgroup/nsgroupd.sock 2>/dev/null')
expect "dpkg --purge leaves none of its files behind" "$left" ""
expect "dpkg --purge: no supervisor runs" "$(inside pgrep -x nsgroupd)" ""

echo "# $passes passed, $fails failed"
[ "$fails" = 0 ]
