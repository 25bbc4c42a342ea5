#!/usr/bin/env bash
# Builds the .deb packages (amd64, arm64, armhf) from the binaries that
# scripts/cross-build.sh left in target/cross, and checks what they install.
#
#   scripts/package-deb.sh                 # all three packages
#   scripts/package-deb.sh --target aarch64
#   scripts/package-deb.sh --install-check # also dpkg -i the amd64 package here,
#                                          # check the files, then remove it (root)
#
# Packages land in target/cross/debian/. cargo-deb is installed from
# crates.io when missing (cargo install --locked). Run cross-build.sh first:
# its release builds are the appliance binary (no `demo` feature, so no
# simulated servers); a binary built --with-demo is refused.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_DIR"
export CARGO_TARGET_DIR="${CROSS_TARGET_DIR:-$REPO_DIR/target/cross}"
CARGO_DEB_VERSION=3.8.0
TARGETS=(x86_64 aarch64 armv7)
INSTALL_CHECK=0
while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) TARGETS=("$2"); shift 2 ;;
        --install-check) INSTALL_CHECK=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
declare -A TRIPLE=( [x86_64]=x86_64-unknown-linux-gnu [aarch64]=aarch64-unknown-linux-gnu [armv7]=armv7-unknown-linux-gnueabihf )
declare -A ARCH=( [x86_64]=amd64 [aarch64]=arm64 [armv7]=armhf )
APPLIANCE_MARK="this build has no simulated servers"

if ! cargo deb --version >/dev/null 2>&1; then
    echo "==> installing cargo-deb $CARGO_DEB_VERSION" >&2
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION"
fi

for t in "${TARGETS[@]}"; do
    triple="${TRIPLE[$t]}"
    bin="$CARGO_TARGET_DIR/$triple/release/mediasync"
    [[ -f "$bin" ]] || { echo "missing $bin: run scripts/cross-build.sh --target $t first" >&2; exit 1; }
    # Only a build without the demo feature answers `demo` with this message.
    grep -qaF "$APPLIANCE_MARK" "$bin" || {
        echo "$bin has the simulated servers (built --with-demo?): run scripts/cross-build.sh --target $t" >&2
        exit 1
    }
    echo "==> cargo deb --target $triple" >&2
    deb="$(cargo deb --no-build --no-strip --target "$triple" --output "$CARGO_TARGET_DIR/debian/" | tail -1)"
    [[ -f "$deb" ]] || { echo "cargo deb produced no package" >&2; exit 1; }
    # What a user gets from `dpkg -i`: the binary, the config as a conffile,
    # the unit where systemd looks for packaged units.
    contents="$(dpkg-deb -c "$deb")"
    for path in ./usr/bin/mediasync ./etc/mediasync/config.toml ./lib/systemd/system/mediasync.service; do
        grep -q " $path\$" <<<"$contents" || { echo "$deb lacks $path" >&2; exit 1; }
    done
    [[ "$(dpkg-deb -f "$deb" Architecture)" == "${ARCH[$t]}" ]] || { echo "$deb has the wrong architecture" >&2; exit 1; }
    dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles | grep -qx /etc/mediasync/config.toml \
        || { echo "$deb does not mark the config as a conffile" >&2; exit 1; }
    echo "    $(basename "$deb"): $(stat -c %s "$deb") bytes, $(dpkg-deb -f "$deb" Architecture), conffile /etc/mediasync/config.toml"
done

if [[ $INSTALL_CHECK == 1 ]]; then
    deb="$(ls -t "$CARGO_TARGET_DIR"/debian/mediasync_*_amd64.deb | head -1)"
    echo "==> dpkg -i $(basename "$deb")" >&2
    dpkg -i "$deb"
    /usr/bin/mediasync --version
    # The appliance refuses the demo at once (exit 2); a demo build would run it.
    demo_code=0
    demo_answer="$(timeout 20 /usr/bin/mediasync demo 2>&1)" || demo_code=$?
    [[ $demo_code == 2 ]] && grep -qF "$APPLIANCE_MARK" <<<"$demo_answer" \
        || { echo "the installed binary did not refuse the demo (exit $demo_code): $demo_answer" >&2; exit 1; }
    test -f /etc/mediasync/config.toml
    test -f /lib/systemd/system/mediasync.service
    if command -v systemd-analyze >/dev/null; then
        systemd-analyze verify /lib/systemd/system/mediasync.service
    fi
    dpkg -r mediasync
    echo "    installed, checked and removed"
fi
