#!/usr/bin/env bash
# The user's path on a real systemd, in a Debian 12 VM (qemu, TCG): install
# the amd64 .deb, `systemctl enable --now mediasync` with the packaged config
# unedited (no connection attempt may leave the guest), edit the config,
# `mediasync check`, `systemctl reload mediasync`, cut the power mid-sync
# (sysrq b), boot again, and check that the unit came back by itself,
# resumed, and holds an exact mirror of a simulated Plex server running
# inside the guest, and that a second one, which comes up two minutes after
# the box, is synced exactly within five minutes of that; also
# `systemd-analyze security` and the status page through a port forwarded to
# the host's loopback. No traffic leaves the VM or the host's loopback (qemu
# user networking with restrict=on).
#
#   scripts/vm-test.sh
#
# Options:
#   --deb FILE             the package (default: the newest
#                          target/cross/debian/mediasync_*_amd64.deb)
#   --sim FILE             an x86_64 mediasync with the simulators, copied into
#                          the guest as /usr/local/bin/mediasync-sim (default:
#                          `cargo build --release --locked` here)
#   --items N              items of the simulated Plex server (default 10000)
#   --rebuild-image        build the guest image even if a cached one matches
#
# Root on Debian 12 (amd64); installs debootstrap, qemu-system-x86, e2fsprogs,
# curl and python3 when missing. The guest image is cached under target/vm/
# and reused while scripts/vm/build-image.sh and the mirror are unchanged;
# each run boots a fresh copy of it. Run scripts/cross-build.sh --target
# x86_64 and scripts/package-deb.sh --target x86_64 first.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
VM_DIR="$REPO_DIR/target/vm"
RUN_DIR="$VM_DIR/run"

DEB=""
SIM=""
PLEX_ITEMS=10000
REBUILD_IMAGE=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --deb) DEB="$2"; shift 2 ;;
        --sim) SIM="$2"; shift 2 ;;
        --items) PLEX_ITEMS="$2"; shift 2 ;;
        --rebuild-image) REBUILD_IMAGE=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
# The late server comes up this long after the box at the second boot, and
# must be synced this long after it came up (issue 14: two minutes, five
# minutes).
LATE_AFTER_BOOT_SECS=120
LATE_DEADLINE_SECS=300

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'vm-test: %s\n' "$*" >&2; exit 1; }

# Timings: one row per phase, printed at the end (and on failure).
declare -a TIMINGS=()
phase_name=""
phase_started=0
script_started=$SECONDS
phase() {
    local now=$SECONDS
    [[ -n $phase_name ]] && TIMINGS+=("$(printf '%-48s %5ss' "$phase_name" $((now - phase_started)))")
    phase_name="$1"
    phase_started=$now
    [[ -n $phase_name ]] && log "$phase_name (at $((now - script_started))s)"
    return 0
}
print_timings() {
    phase ""
    echo "--- timings"
    printf '  %s\n' "${TIMINGS[@]}"
    printf '  %-48s %5ss\n' "total" $((SECONDS - script_started))
}

# --- the VM and what it printed -------------------------------------------
QEMU_PID=""
RESULTS_SEEN=0
stop_vm() {
    if [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null; then
        kill "$QEMU_PID" 2>/dev/null || true
        wait "$QEMU_PID" 2>/dev/null || true
    fi
    QEMU_PID=""
}
# Prints the guest's result lines not printed yet.
show_results() {
    [[ -f $RUN_DIR/results.log ]] || return 0
    local total
    total="$(tr -d '\r' <"$RUN_DIR/results.log" | wc -l)"
    if ((total > RESULTS_SEEN)); then
        tr -d '\r' <"$RUN_DIR/results.log" | sed -n "$((RESULTS_SEEN + 1)),${total}p" | sed 's/^/guest| /'
        RESULTS_SEEN=$total
    fi
}
# Waits for a line of results.log matching PATTERN; fails on the guest's end
# line, a dead qemu or the deadline.
wait_for() { # pattern seconds what
    local deadline=$((SECONDS + $2))
    while ((SECONDS < deadline)); do
        show_results
        if grep -qE "$1" "$RUN_DIR/results.log" 2>/dev/null; then
            return 0
        fi
        if grep -qE '^VMTEST end' "$RUN_DIR/results.log" 2>/dev/null; then
            FAILURE="the guest ended before $3"
            return 1
        fi
        if ! kill -0 "$QEMU_PID" 2>/dev/null; then
            FAILURE="qemu exited before $3: $(tail -n 3 "$RUN_DIR/qemu.log" 2>/dev/null)"
            return 1
        fi
        sleep 1
    done
    FAILURE="no $3 within $2 s"
    return 1
}
FAILURE=""
on_failure() {
    show_results
    echo "--- FAILED: $FAILURE"
    echo "--- guest console, last 40 lines ($RUN_DIR/console.log)"
    tr -d '\r' <"$RUN_DIR/console.log" 2>/dev/null | tail -n 40
    stop_vm
    # The journal on the disk covers both boots, also when the guest hung.
    if [[ -f $RUN_DIR/disk.img ]]; then
        rm -rf "$RUN_DIR/journal"
        mkdir -p "$RUN_DIR/journal"
        if ! command -v journalctl >/dev/null; then
            echo "--- (no journalctl here to read the guest's journal: apt-get install systemd)"
        elif debugfs -R "rdump /var/log/journal $RUN_DIR/journal" "$RUN_DIR/disk.img" >/dev/null 2>&1; then
            echo "--- journal of mediasync.service, every boot, last 60 lines (from the disk image)"
            journalctl -D "$RUN_DIR/journal/journal" -u mediasync --no-pager -o short-monotonic 2>/dev/null | tail -n 60
        fi
    fi
    print_timings
    exit 1
}
trap 'stop_vm' EXIT

# --- the run -------------------------------------------------------------
phase "host tools"
[[ $(id -u) == 0 ]] || die "run as root (debootstrap and mkfs.ext4 -d keep file owners)"
missing=()
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v mkfs.ext4 >/dev/null && command -v debugfs >/dev/null || missing+=(e2fsprogs)
command -v curl >/dev/null || missing+=(curl)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    # A mirror mid-sync makes `apt-get update` fail while the packages are
    # fetchable: go on, and let the install fail loudly if they are not.
    apt-get update -qq || echo "apt-get update reported errors; continuing"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
qemu-system-x86_64 --version | head -n 1

phase "inputs: the .deb and the simulator"
if [[ -z $DEB ]]; then
    DEB="$(ls -t target/cross/debian/mediasync_*_amd64.deb 2>/dev/null | head -n 1 || true)"
    [[ -n $DEB ]] || die "no amd64 package: run scripts/cross-build.sh --target x86_64 and scripts/package-deb.sh --target x86_64 first"
fi
[[ -f $DEB ]] || die "$DEB: no such package"
if [[ -z $SIM ]]; then
    # The packaged binary may be built without the simulators; the guest
    # gets a host release build with default features as a separate program.
    log "cargo build --release --locked (the simulator)"
    cargo build --release --locked --quiet
    SIM="${CARGO_TARGET_DIR:-$REPO_DIR/target}/release/mediasync"
fi
"$SIM" --help 2>&1 | grep 'fake-plex' >/dev/null || die "$SIM has no fake-plex command: pass a build with default features (--sim)"
echo "package $DEB ($(stat -c %s "$DEB") bytes), simulator $SIM"

phase "guest image (Debian 12, debootstrap)"
# The mirror apt uses here (deb822 or one-line sources), else Debian's CDN.
mirror="${MEDIASYNC_VM_MIRROR:-}"
if [[ -z $mirror ]]; then
    mirror="$(awk '
        /^URIs:/ { uri = $2 }
        /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == "bookworm" && uri != "") { print uri; exit } }
        /^deb / && $3 == "bookworm" { print $2; exit }
    ' /etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | head -n 1 || true)"
    mirror="${mirror:-http://deb.debian.org/debian}"
fi
image_key="$( (cat scripts/vm/build-image.sh; echo "$mirror") | sha256sum | cut -c1-16)"
image_dir="$VM_DIR/image-$image_key"
if [[ $REBUILD_IMAGE == 1 || ! -f $image_dir/ready ]]; then
    rm -rf "$VM_DIR"/image-*
    mkdir -p "$image_dir"
    log "building the image from $mirror (cache key $image_key)"
    bash scripts/vm/build-image.sh "$image_dir" "$mirror"
    touch "$image_dir/ready"
else
    echo "reusing $image_dir (build-image.sh and mirror unchanged)"
fi

phase "disks for this run"
rm -rf "$RUN_DIR"
mkdir -p "$RUN_DIR/payload"
cp --sparse=always "$image_dir/disk.img" "$RUN_DIR/disk.img"
cp "$DEB" "$RUN_DIR/payload/mediasync.deb"
cp "$SIM" "$RUN_DIR/payload/mediasync-sim"
cp scripts/vm/guest.sh scripts/vm/guest_tool.py "$RUN_DIR/payload/"
cat >"$RUN_DIR/payload/settings.env" <<EOF
PLEX_PORT=32400
PLEX_ITEMS=$PLEX_ITEMS
PLEX_TOKEN=vm-test-plex-token
CUT_FRACTION=0.3
UNEDITED_WATCH_SECS=45
LATE_PORT=32500
LATE_ITEMS=3000
LATE_AFTER_BOOT_SECS=$LATE_AFTER_BOOT_SECS
LATE_DEADLINE_SECS=$LATE_DEADLINE_SECS
EOF
mkfs.ext4 -q -F -L vmtest -d "$RUN_DIR/payload" "$RUN_DIR/payload.img" 64M

# Boots the run's disk in a new qemu process: the power cut ends the first
# one (sysrq b resets the guest, and -no-reboot turns a reset into an exit),
# and "power on" is a second one on the same disk.
page_port=""
start_vm() {
    local port
    for _ in 1 2 3 4 5; do
        # A free loopback port for the status page, kept for both boots (qemu
        # fails if it is taken meanwhile: then another one).
        port="${page_port:-$((20000 + RANDOM % 40000))}"
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && { page_port=""; continue; }
        qemu-system-x86_64 -name mediasync-vm-test -nodefaults -no-user-config -no-reboot \
            -accel tcg,thread=multi -cpu max -m 1024 -smp 2 -display none -monitor none \
            -chardev "file,id=console,path=$RUN_DIR/console.log,append=on" -serial chardev:console \
            -chardev "file,id=results,path=$RUN_DIR/results.log,append=on" -serial chardev:results \
            -kernel "$image_dir/vmlinuz" -initrd "$image_dir/initrd.img" \
            -append "root=/dev/vda rw console=ttyS0 net.ifnames=0" \
            -drive "file=$RUN_DIR/disk.img,format=raw,if=virtio" \
            -drive "file=$RUN_DIR/payload.img,format=raw,if=virtio,readonly=on" \
            -netdev "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:8787" \
            -device virtio-net-pci,netdev=n0 \
            >"$RUN_DIR/qemu.log" 2>&1 &
        QEMU_PID=$!
        sleep 2
        if kill -0 "$QEMU_PID" 2>/dev/null; then
            page_port=$port
            echo "qemu $QEMU_PID (TCG), boot $1, status page forwarded to http://127.0.0.1:$page_port/"
            return 0
        fi
        grep -q hostfwd "$RUN_DIR/qemu.log" || break
        page_port=""
    done
    FAILURE="qemu did not start: $(cat "$RUN_DIR/qemu.log")"
    return 1
}

phase "boot 1: up to the guest's test"
start_vm 1 || on_failure
wait_for '^VMTEST boot 1' 600 "the first boot" || on_failure
phase "boot 1: install, configure, sync until the cut"
wait_for '^VMTEST cutting the power' 900 "the power cut" || on_failure
for _ in $(seq 60); do kill -0 "$QEMU_PID" 2>/dev/null || break; sleep 1; done
if kill -0 "$QEMU_PID" 2>/dev/null; then
    FAILURE="the guest did not reset 60 s after sysrq b"
    on_failure
fi
wait "$QEMU_PID" 2>/dev/null || true
QEMU_PID=""
phase "boot 2: up after the power cut"
start_vm 2 || on_failure
wait_for '^VMTEST boot 2' 600 "the second boot" || on_failure
phase "boot 2: resume and checks"
wait_for '^VMTEST end' $((LATE_AFTER_BOOT_SECS + LATE_DEADLINE_SECS + 600)) "the end of the guest's checks" || on_failure
show_results

phase "status page from the host"
host_checks=()
healthz="$(curl -sS --max-time 20 "http://127.0.0.1:$page_port/healthz" 2>&1 || true)"
if [[ $healthz == ok ]]; then
    host_checks+=("CHECK page-healthz: PASS http://127.0.0.1:$page_port/healthz answered \"ok\" through the forwarded port")
else
    host_checks+=("CHECK page-healthz: FAIL http://127.0.0.1:$page_port/healthz answered: ${healthz:0:200}")
fi
status_check="$(curl -sS --max-time 20 "http://127.0.0.1:$page_port/api/status" 2>&1 | python3 -c '
import json, sys
text = sys.stdin.read()
try:
    document = json.loads(text)
except ValueError:
    print("FAIL /api/status is not JSON: %r" % text[:200]); sys.exit()
servers = {server.get("name"): server for server in document.get("servers", [])}
shown = []
for name in ("living-room", "nas"):
    server = servers.get(name)
    if server is None or server.get("last_success_at") is None:
        print("FAIL /api/status has no successful %s: %r" % (name, text[:300])); sys.exit()
    items = sum(int(library.get("items") or 0) for library in server.get("libraries", []))
    shown.append("%s %s, %d items in %d libraries" % (name, server.get("state"), items, len(server.get("libraries", []))))
print("PASS /api/status answered: %s" % "; ".join(shown))
' 2>&1)"
host_checks+=("CHECK page-status: $status_check")
printf '%s\n' "${host_checks[@]}"
stop_vm

phase ""
mapfile -t checks < <(tr -d '\r' <"$RUN_DIR/results.log" | grep '^CHECK '; printf '%s\n' "${host_checks[@]}")
echo "--- checks"
printf '  %s\n' "${checks[@]#CHECK }"
expected=(install unedited-config cli-check reload unit-active resumed mirror-exact security late-server page-healthz page-status)
for name in "${expected[@]}"; do
    grep -q "^CHECK $name: " <<<"$(printf '%s\n' "${checks[@]}")" || { FAILURE="check $name did not run"; on_failure; }
done
if grep -q '^CHECK [a-z-]*: FAIL' <<<"$(printf '%s\n' "${checks[@]}")"; then
    FAILURE="$(printf '%s\n' "${checks[@]}" | grep -c '^CHECK [a-z-]*: FAIL') check(s) failed"
    on_failure
fi
print_timings
echo "vm-test: all ${#checks[@]} checks passed"
