#!/usr/bin/env bash
# The guest side of scripts/vm-test.sh, started at every boot by
# vmtest-runner.service from the run's payload disk (/run/vmtest). Boot 1
# installs the package as a user would, starts it with the packaged config
# unedited (no connection attempt may leave the guest), edits the config (a
# simulated Plex server that is up, "living-room", and one that is not yet,
# "nas"), runs `mediasync check`, applies the edit with `systemctl reload`
# and cuts the power mid-sync. Boot 2 checks what the appliance did by
# itself, while "nas" comes up two minutes after the box and must be synced
# within five minutes of that. Results go to the second serial port (the
# host's results.log) as `CHECK name: PASS|FAIL detail`.
set -uo pipefail
exec >/dev/ttyS1 2>&1
payload=/run/vmtest
# shellcheck source=/dev/null
source "$payload/settings.env"
state_dir=/var/lib/vmtest
tool=(python3 "$payload/guest_tool.py")
plex_url="http://127.0.0.1:$PLEX_PORT"
nas_url="http://127.0.0.1:$LATE_PORT"
config=/etc/mediasync/config.toml
failed=0

say() { printf 'VMTEST %s (uptime %ss)\n' "$*" "$(cut -d' ' -f1 /proc/uptime)"; }
check() { # name PASS|FAIL detail...
    local name="$1" result="$2"; shift 2
    printf 'CHECK %s: %s %s\n' "$name" "$result" "$*"
    [[ $result == FAIL ]] && failed=1
    return 0
}
nft_packets() { nft list counter inet vmtest "$1" | grep -o 'packets [0-9]*' | cut -d' ' -f2; }
unit_journal() { journalctl -u mediasync -b 0 --no-pager -o short-monotonic | tail -n "${1:-60}"; }
# On failure the host prints the unit's journal of both boots from the disk.
finish() {
    say "end $([[ $failed == 0 ]] && echo pass || echo fail)"
    exit 0
}

# The edited config: what a user who read the README writes. The status page
# listens on every interface so the host reaches it through qemu's forward
# (a listen address takes a restart: the reboot after the power cut).
write_config() {
    cat >"$config" <<EOF
[store]
path = "/var/lib/mediasync/mediasync.redb"

[[server]]
name = "living-room"
kind = "plex"
url = "$plex_url"
token = "$PLEX_TOKEN"

[[server]]
name = "nas"
kind = "plex"
url = "$nas_url"
token = "$PLEX_TOKEN"

[status]
listen = "0.0.0.0:8787"
EOF
}

fake_unit() { # unit-name port items
    cat >"/etc/systemd/system/$1.service" <<EOF
[Unit]
Description=simulated Plex server on 127.0.0.1:$2 (vm-test)
Before=mediasync.service

[Service]
ExecStart=/usr/local/bin/mediasync-sim fake-plex --listen 127.0.0.1:$2 --items $3 --token $PLEX_TOKEN
ExecStartPost=/bin/sh -c 'until curl -fsS -o /dev/null -H "X-Plex-Token: $PLEX_TOKEN" http://127.0.0.1:$2/library/sections; do sleep 0.2; done'
DynamicUser=yes

[Install]
WantedBy=multi-user.target
EOF
}

# The packaged config, unedited, started as a hasty user would (`enable
# --now` before editing): the service must be up and make no connection
# attempt. Every TCP SYN and UDP datagram leaving the guest (other than
# DHCP), and every DNS query, even to loopback, is counted and logged with
# its destination. The guest has a default route (build-image.sh), so an
# attempt to any address leaves as a packet instead of failing unseen. The
# status API, the page and `mediasync check` must say that no server is
# configured. The service keeps running: the edit is applied by a reload.
check_unedited_config() {
    if ! ip route show default | grep -q via; then
        check unedited-config FAIL "the guest has no default route, so connection attempts would not show as packets: $(ip route show | tr '\n' ';')"
        return
    fi
    nft -f - <<'EOF'
table inet vmtest {
    counter tcp_syn_out {}
    counter udp_out {}
    counter dns {}
    chain out {
        type filter hook output priority 0; policy accept;
        meta l4proto { tcp, udp } th dport 53 counter name "dns" log prefix "vmtest-out-dns: "
        oifname "lo" accept
        tcp flags & (syn | ack) == syn counter name "tcp_syn_out" log prefix "vmtest-out-tcp: "
        udp dport != { 67, 68 } counter name "udp_out" log prefix "vmtest-out-udp: "
    }
}
EOF
    systemctl enable --now mediasync >/dev/null 2>&1
    sleep "$UNEDITED_WATCH_SECS"
    local active syn udp dns listed page told
    active="$(systemctl is-active mediasync)"
    syn="$(nft_packets tcp_syn_out)"
    udp="$(nft_packets udp_out)"
    dns="$(nft_packets dns)"
    listed="$("${tool[@]}" server-names)"
    page="$(curl -sS --max-time 10 http://127.0.0.1:8787/ 2>&1 | grep -o 'No media server is configured' || true)"
    told="$(mediasync check 2>&1 >/dev/null | grep -o 'no media server is configured' || true)"
    if [[ $active == active && $syn == 0 && $udp == 0 && $dns == 0 && $listed == "none" && -n $page && -n $told ]]; then
        check unedited-config PASS "unit active, no connection attempt in ${UNEDITED_WATCH_SECS} s (0 TCP SYN and 0 UDP datagrams left the guest, 0 DNS queries); /api/status lists no server; the page and \`mediasync check\` say none is configured"
    else
        check unedited-config FAIL "unit $active; in ${UNEDITED_WATCH_SECS} s with the unedited config $syn TCP SYN and $udp UDP datagrams left the guest, $dns DNS queries; servers listed: $listed; the page says none is configured: ${page:-no}; check says so: ${told:-no}"
        journalctl -k -b 0 --no-pager | grep -o 'vmtest-out-.*' \
            | sed -E 's/ (IN|SRC|MAC|LEN|TOS|PREC|TTL|ID|SPT|WINDOW|RES|URGP|SEQ|ACK)=[^ ]*//g; s/ (SYN|DF)\b//g' | sort | uniq -c | head -n 10
        echo "--- journal of mediasync.service with the unedited config"
        unit_journal 20
    fi
    nft delete table inet vmtest
}

# `mediasync check` right after the edit, as the README says: living-room
# (up) reachable with its token accepted and its four libraries (the three
# sections and the watch history), nas (not up yet) not reachable, and exit 1
# for that problem.
check_cli_check() {
    local table code=0
    table="$(mediasync check 2>&1)" || code=$?
    if [[ $code == 1 ]] && grep -qE '^living-room +plex +[^ ]+ +yes +accepted +4: Movies, TV Shows, Music, Watch History ' <<<"$table" \
        && grep -qE '^nas +plex +[^ ]+ +no ' <<<"$table"; then
        check cli-check PASS "exit 1 for the server not up yet; $(grep -E '^(living-room|nas) ' <<<"$table" | tr -s ' ' | tr '\n' ';')"
    else
        check cli-check FAIL "exit $code: $(tr '\n' ';' <<<"$table")"
    fi
}

# The edit applied without a restart: `systemctl reload` (the unit copies the
# config again, then sends SIGHUP) adds both servers to the running service.
check_reload() {
    local pid_before pid_after listed
    pid_before="$(systemctl show mediasync -p MainPID --value)"
    if ! systemctl reload mediasync; then
        check reload FAIL "systemctl reload failed: $(unit_journal 5 | tr '\n' ';')"
        return
    fi
    listed="$("${tool[@]}" wait-listed --servers living-room,nas --timeout 60)"
    pid_after="$(systemctl show mediasync -p MainPID --value)"
    if [[ $listed == listed* && $pid_before == "$pid_after" ]]; then
        check reload PASS "systemctl reload: the service (MainPID $pid_after, not restarted) $listed"
    else
        check reload FAIL "MainPID $pid_before, then $pid_after; $listed"
    fi
}

# The late server: "nas" comes up LATE_AFTER_BOOT_SECS after the box booted
# (a NAS boots slower than a Pi, and after a power cut both restart at once)
# and must be synced completely, and exactly, within LATE_DEADLINE_SECS.
start_late_server() {
    local delay
    delay=$((LATE_AFTER_BOOT_SECS - $(cut -d. -f1 /proc/uptime)))
    ((delay > 0)) || delay=0
    (
        sleep "$delay"
        systemctl start fake-plex-nas
        date +%s >/run/nas-up
        say "late-server: nas is up"
    ) &
}

check_late_server() {
    local waited=0
    while [[ ! -f /run/nas-up ]] && ((waited < LATE_AFTER_BOOT_SECS + 120)); do
        sleep 2
        waited=$((waited + 2))
    done
    if [[ ! -f /run/nas-up ]]; then
        check late-server FAIL "the simulated nas server did not come up: $(journalctl -u fake-plex-nas -b 0 --no-pager | tail -n 3 | tr '\n' ';')"
        return
    fi
    local up left synced
    up="$(cat /run/nas-up)"
    left=$((LATE_DEADLINE_SECS - ($(date +%s) - up)))
    if synced="$("${tool[@]}" wait-synced --server nas --timeout "$left")"; then
        local elapsed=$(($(date +%s) - up))
        mediasync --config "$config" export --server nas >/tmp/export-nas.jsonl
        local exact
        if exact="$("${tool[@]}" compare --plex "$nas_url" --token "$PLEX_TOKEN" --export /tmp/export-nas.jsonl --server nas)"; then
            check late-server PASS "nas came up ${LATE_AFTER_BOOT_SECS} s after boot; its first sync was complete at most ${elapsed} s later (limit ${LATE_DEADLINE_SECS} s), $exact"
        else
            check late-server FAIL "synced at most ${elapsed} s after the server came up, but $exact"
        fi
    else
        check late-server FAIL "no complete first sync ${LATE_DEADLINE_SECS} s after the server came up: $synced"
        unit_journal 30
    fi
}

boot_one() {
    say "boot 1: install, start unedited, edit, check, reload, cut the power mid-sync"
    echo 1 >/proc/sys/kernel/sysrq
    install -m 0755 "$payload/mediasync-sim" /usr/local/bin/mediasync-sim
    if dpkg -i "$payload/mediasync.deb" >/tmp/dpkg.log 2>&1; then
        check install PASS "dpkg -i: $(dpkg-query -W -f='${Package} ${Version} ${Architecture}' mediasync), $(mediasync --version)"
    else
        check install FAIL "dpkg -i failed: $(tail -n 5 /tmp/dpkg.log)"
        finish
    fi
    check_unedited_config

    fake_unit fake-plex "$PLEX_PORT" "$PLEX_ITEMS"
    # nas is started at boot 2 only, two minutes after the box.
    fake_unit fake-plex-nas "$LATE_PORT" "$LATE_ITEMS"
    systemctl daemon-reload
    systemctl enable --now fake-plex >/dev/null 2>&1 || { check simulator FAIL "fake-plex did not start: $(journalctl -u fake-plex -b 0 --no-pager | tail -n 5)"; finish; }
    local total
    total="$("${tool[@]}" listing-count --plex "$plex_url" --token "$PLEX_TOKEN")" || { check simulator FAIL "cannot read the simulated server's listing"; finish; }
    say "simulated Plex server up on 127.0.0.1:$PLEX_PORT with $total items"

    write_config
    check_cli_check
    check_reload
    local mid
    if mid="$("${tool[@]}" wait-mid --plex "$plex_url" --token "$PLEX_TOKEN" --server living-room --fraction "$CUT_FRACTION" --timeout 600)"; then
        say "cutting the power: $mid"
        # Wait until the serial port has sent that line, and sync nothing:
        # what the guest had not written is lost, as in a power cut.
        python3 -c 'import sys, termios; termios.tcdrain(sys.stdout.fileno())'
        echo b >/proc/sysrq-trigger
        sleep 60
        check power-cut FAIL "the guest did not reset after sysrq b"
    else
        check power-cut FAIL "$mid"
    fi
    finish
}

boot_two() {
    say "boot 2: after the power cut"
    start_late_server
    local active=""
    for _ in $(seq 60); do
        active="$(systemctl is-active mediasync)"
        [[ $active == active ]] && break
        sleep 1
    done
    if [[ $active == active ]]; then
        check unit-active PASS "active by itself after the power cut ($(systemctl show mediasync -p NRestarts --value) restarts, active since $(systemctl show mediasync -p ActiveEnterTimestampMonotonic --value | awk '{printf "%.1f", $1/1e6}') s after boot)"
    else
        check unit-active FAIL "mediasync is $active after the power cut"
    fi
    local waited
    if waited="$("${tool[@]}" wait-synced --server living-room --timeout 600)"; then
        say "$waited"
    else
        check mirror-exact FAIL "$waited"
        finish
    fi
    local resumed
    if resumed="$(journalctl -u mediasync -b 0 --no-pager -o cat | grep -m 3 'resuming the interrupted')"; then
        check resumed PASS "$(tr '\n' ';' <<<"$resumed" | sed 's/;$//')"
    else
        check resumed FAIL "no \"resuming the interrupted\" line in this boot's journal of mediasync"
    fi
    local exact
    if mediasync --config "$config" export --server living-room >/tmp/export.jsonl 2>/tmp/export.err; then
        if exact="$("${tool[@]}" compare --plex "$plex_url" --token "$PLEX_TOKEN" --export /tmp/export.jsonl --server living-room)"; then
            check mirror-exact PASS "$exact"
        else
            check mirror-exact FAIL "$exact"
        fi
    else
        check mirror-exact FAIL "mediasync export failed: $(tail -n 3 /tmp/export.err)"
    fi
    local security exposure
    security="$(systemd-analyze security mediasync --no-pager 2>&1 | tail -n 1)"
    exposure="$(grep -oE '[0-9]+\.[0-9]+' <<<"$security" | head -n 1)"
    if [[ -n $exposure ]] && awk -v e="$exposure" 'BEGIN { exit !(e <= 2.0) }'; then
        check security PASS "systemd-analyze security: $exposure (at most 2.0): $security"
    else
        check security FAIL "systemd-analyze security above 2.0 or unreadable: $security"
    fi
    check_late_server
    finish
}

# The phase file is written and synced once, before the package is installed;
# the power cut itself syncs nothing.
mkdir -p "$state_dir"
phase="$(cat "$state_dir/phase" 2>/dev/null || echo new)"
case "$phase" in
    new)
        echo booted-once >"$state_dir/phase"
        sync "$state_dir/phase" "$state_dir"
        boot_one
        ;;
    booted-once)
        echo checked >"$state_dir/phase"
        boot_two
        ;;
    *)
        say "boot after the checks (phase $phase): nothing to do"
        check unexpected-boot FAIL "the guest booted a third time"
        finish
        ;;
esac
