#!/usr/bin/env bash
# Cross-build (or cross-test) mediasync for ARM Linux with Debian bookworm's own
# Rust 1.85 toolchain (rustc-web / cargo-web) -- no Docker, no rustup targets.
#
#   scripts/cross-build.sh                      # release builds for aarch64 + armv7
#   scripts/cross-build.sh --target aarch64     # one target (aarch64|armv7|x86_64|all, comma lists ok)
#   scripts/cross-build.sh --target x86_64      # amd64 with Debian's 1.85 (proves the MSRV lockfile builds)
#   scripts/cross-build.sh --with-demo          # release builds that keep the simulated servers
#   scripts/cross-build.sh --test               # `cargo test` under qemu-user instead of building
#   scripts/cross-build.sh --test --target armv7 -- some_filter -- --nocapture
#
# Release builds are the appliance binary: `--no-default-features`, so the
# simulated servers (the `demo` feature: `demo`, `fake-plex`, tiny_http) are
# left out; these are the binaries scripts/package-deb.sh packages.
# `--with-demo` keeps the default features (to try the demo on a board, or to
# compare sizes); it writes to the same path, and package-deb.sh refuses it.
# `--test` always builds with the default features: the tests run the fakes.
#
# Run as root on Debian bookworm (amd64). Idempotent: installs only what is
# missing (apt packages, dpkg foreign architectures, the ARM target std copied
# into /usr/lib/rustlib), then builds. rustup's toolchain can stay first on
# PATH: everything here calls /usr/bin/cargo with RUSTC=/usr/bin/rustc.
#
# Environment knobs:
#   RUST_DEB_VERSION   Debian version of rustc-web/cargo-web/libstd-rust-web-dev
#                      (default 1.85.0+dfsg3-1~deb12u3; falls back to the apt
#                      candidate if the mirror no longer carries it)
#   CROSS_TARGET_DIR   cargo target dir (default <repo>/target/cross, so it
#                      never fights the host rustup build in target/)
#   SKIP_INSTALL=1     same as --no-install
set -euo pipefail

RUST_DEB_VERSION="${RUST_DEB_VERSION:-1.85.0+dfsg3-1~deb12u3}"
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET_DIR="${CROSS_TARGET_DIR:-$REPO_DIR/target/cross}"
BIN_NAME="mediasync"

MODE=build
TARGETS_ARG=all
DO_INSTALL=1
[[ "${SKIP_INSTALL:-0}" == 1 ]] && DO_INSTALL=0
EXTRA_ARGS=()
FEATURE_ARGS=(--no-default-features)
BUILD_NAME="appliance, no demo"

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
    cat <<'EOF'
Options:
  --target T        aarch64 | armv7 | x86_64 | all (= aarch64,armv7); comma lists ok
  --test            run `cargo test --locked --target T` (ARM under qemu-user-static)
  --with-demo       release builds with the default features (the `demo` feature)
  --no-install      skip the apt/dpkg/rustlib setup step (fail if something is missing)
  --install-only    only do the setup step
  --target-dir DIR  cargo target dir (default target/cross)
  -h, --help        this text
  -- ARGS...        passed verbatim to `cargo test` (with --test), e.g.
                    `-- my_filter` or `-- my_filter -- --nocapture`
EOF
}

log()  { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die()  { printf 'error: %s\n' "$*" >&2; exit 1; }

while [[ $# -gt 0 ]]; do
    case "$1" in
        --target) [[ $# -ge 2 ]] || die "--target needs a value"; TARGETS_ARG="$2"; shift 2 ;;
        --target=*) TARGETS_ARG="${1#*=}"; shift ;;
        --test) MODE=test; shift ;;
        --with-demo) FEATURE_ARGS=(); BUILD_NAME="with the demo feature"; shift ;;
        --install-only) MODE=install; shift ;;
        --no-install) DO_INSTALL=0; shift ;;
        --target-dir) [[ $# -ge 2 ]] || die "--target-dir needs a value"; TARGET_DIR="$2"; shift 2 ;;
        --target-dir=*) TARGET_DIR="${1#*=}"; shift ;;
        -h|--help) usage; exit 0 ;;
        --) shift; EXTRA_ARGS=("$@"); break ;;
        *) die "unknown argument '$1' (see --help)" ;;
    esac
done

# ---------------------------------------------------------------- targets ---
# short name -> triple, Debian arch, GNU prefix, cross gcc package, qemu binary
declare -A TRIPLE=( [aarch64]=aarch64-unknown-linux-gnu [armv7]=armv7-unknown-linux-gnueabihf [x86_64]=x86_64-unknown-linux-gnu )
declare -A DEBARCH=( [aarch64]=arm64 [armv7]=armhf [x86_64]=amd64 )
declare -A GNU=( [aarch64]=aarch64-linux-gnu [armv7]=arm-linux-gnueabihf [x86_64]=x86_64-linux-gnu )
# (libc6-dev-*-cross is only a Recommends of the cross gcc; we install without
# recommends, so name it: it brings the target headers and /usr/<gnu> sysroot)
declare -A GCCPKG=( [aarch64]="gcc-aarch64-linux-gnu libc6-dev-arm64-cross" [armv7]="gcc-arm-linux-gnueabihf libc6-dev-armhf-cross" [x86_64]="gcc libc6-dev" )
declare -A QEMU=( [aarch64]=qemu-aarch64-static [armv7]=qemu-arm-static [x86_64]= )
declare -A BINFMT=( [aarch64]=qemu-aarch64 [armv7]=qemu-arm [x86_64]= )

TARGETS=()
IFS=',' read -r -a _req <<<"$TARGETS_ARG"
for t in "${_req[@]}"; do
    case "$t" in
        all) TARGETS+=(aarch64 armv7) ;;
        aarch64|arm64|aarch64-unknown-linux-gnu) TARGETS+=(aarch64) ;;
        armv7|armhf|armv7-unknown-linux-gnueabihf) TARGETS+=(armv7) ;;
        x86_64|amd64|x86_64-unknown-linux-gnu) TARGETS+=(x86_64) ;;
        *) die "unknown target '$t' (aarch64|armv7|x86_64|all)" ;;
    esac
done
[[ ${#TARGETS[@]} -gt 0 ]] || die "no target selected"

HOST_ARCH="$(dpkg --print-architecture 2>/dev/null || echo unknown)"
[[ "$HOST_ARCH" == amd64 ]] || warn "written for an amd64 host, this one is '$HOST_ARCH'"

# ---------------------------------------------------------------- install ---
export DEBIAN_FRONTEND=noninteractive
APT_UPDATED=0
apt_update() {
    [[ $APT_UPDATED == 1 ]] && return 0
    log "apt-get update"
    # Third-party sources that cannot be reached must not stop us; the Debian
    # mirror is what matters, and a later install/download fails loudly if not.
    apt-get update -qq || warn "apt-get update reported errors; continuing"
    APT_UPDATED=1
}

pkg_version() { { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null || true; } | awk '$1=="ii"{print $2}'; }

pick_rust_version() {
    # Use the pinned version if the mirror has it, else the current candidate
    # (bookworm point releases replace the old one).
    if apt-cache madison rustc-web 2>/dev/null | awk -F'|' '{gsub(/ /,"",$2); print $2}' | grep -qxF "$RUST_DEB_VERSION"; then
        echo "$RUST_DEB_VERSION"
    else
        local cand
        cand="$(apt-cache policy rustc-web | awk '/Candidate:/{print $2}')"
        [[ -n "$cand" && "$cand" != "(none)" ]] || die "rustc-web is not available from apt"
        warn "rustc-web $RUST_DEB_VERSION not on the mirror, using $cand"
        echo "$cand"
    fi
}

install_deps() {
    [[ $EUID -eq 0 ]] || die "the setup step needs root (or pass --no-install once it is done)"
    command -v apt-get >/dev/null || die "apt-get not found: this script is for Debian bookworm"

    # 1. dpkg foreign architectures (only needed to fetch the ARM target std .debs)
    local need_arch=() t a
    for t in "${TARGETS[@]}"; do
        a="${DEBARCH[$t]}"
        [[ "$a" == "$HOST_ARCH" ]] && continue
        dpkg --print-foreign-architectures | grep -qx "$a" || need_arch+=("$a")
    done
    if [[ ${#need_arch[@]} -gt 0 ]]; then
        for a in "${need_arch[@]}"; do log "dpkg --add-architecture $a"; dpkg --add-architecture "$a"; done
        APT_UPDATED=0; apt_update
    fi

    # 2. apt packages
    local have_rust want_rust missing=()
    have_rust="$(pkg_version rustc-web)"
    if [[ -z "$have_rust" || -z "$(pkg_version cargo-web)" || "$(pkg_version cargo-web)" != "$have_rust" ]]; then
        apt_update
        want_rust="$(pick_rust_version)"
        missing+=("rustc-web=$want_rust" "cargo-web=$want_rust" "libstd-rust-web-dev=$want_rust")
    fi
    local pkgs=(binutils qemu-user-static file)
    # shellcheck disable=SC2206
    for t in "${TARGETS[@]}"; do pkgs+=(${GCCPKG[$t]}); done
    local p
    for p in "${pkgs[@]}"; do [[ -n "$(pkg_version "$p")" ]] || missing+=("$p"); done
    if [[ ${#missing[@]} -gt 0 ]]; then
        apt_update
        log "apt-get install ${missing[*]}"
        apt-get install -y -qq --no-install-recommends "${missing[@]}"
    fi
    have_rust="$(pkg_version rustc-web)"
    [[ -n "$have_rust" ]] || die "rustc-web did not install"

    # 3. target std for each foreign target, matching the installed rustc-web exactly
    for t in "${TARGETS[@]}"; do
        a="${DEBARCH[$t]}"
        [[ "$a" == "$HOST_ARCH" ]] && continue
        install_target_std "${TRIPLE[$t]}" "$a" "$have_rust"
    done
}

install_target_std() {
    local triple="$1" arch="$2" ver="$3"
    local dest="/usr/lib/rustlib/$triple"
    local stamp="$dest/.debian-libstd-version"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$ver" ]] && compgen -G "$dest/lib/libstd-*.rlib" >/dev/null; then
        return 0
    fi
    log "installing Rust std for $triple from libstd-rust-web-dev:$arch=$ver"
    local tmp; tmp="$(mktemp -d)"; chmod 0755 "$tmp"   # readable by apt's _apt user
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    if ! (cd "$tmp" && apt-get download -qq "libstd-rust-web-dev:$arch=$ver"); then
        APT_UPDATED=0; apt_update
        (cd "$tmp" && apt-get download -qq "libstd-rust-web-dev:$arch=$ver") \
            || die "cannot download libstd-rust-web-dev:$arch=$ver"
    fi
    mkdir -p "$tmp/root"
    dpkg -x "$tmp"/libstd-rust-web-dev_*.deb "$tmp/root"
    [[ -d "$tmp/root/usr/lib/rustlib/$triple/lib" ]] || die "package has no usr/lib/rustlib/$triple"
    rm -rf "$dest"
    mkdir -p /usr/lib/rustlib
    cp -a "$tmp/root/usr/lib/rustlib/$triple" "$dest"
    # The -dev package carries libstd-*.so symlinks into the target's multiarch
    # dir (shipped by libstd-rust-web-1.85:$arch, which we do not install).
    # Static builds only need the rlibs; drop the dangling links.
    find "$dest" -xtype l -delete
    echo "$ver" >"$stamp"
}

# Integration tests exec the built binary themselves (CARGO_BIN_EXE_*); for an
# ARM binary that only works when the kernel hands ARM ELFs to qemu via
# binfmt_misc. qemu-user-static ships the entries in /usr/lib/binfmt.d, but
# without a running systemd/binfmt-support (containers, fresh CI VMs) they are
# not registered. Registration is kernel state: redo it on every --test run.
ensure_binfmt() {
    local name="$1" dir=/proc/sys/fs/binfmt_misc
    local conf="/usr/lib/binfmt.d/$name.conf"
    [[ -e "$dir/$name" ]] && return 0
    if [[ ! -e "$dir/register" ]]; then
        mount -t binfmt_misc binfmt_misc "$dir" 2>/dev/null || true
    fi
    [[ -e "$dir/$name" ]] && return 0
    if [[ -w "$dir/register" && -f "$conf" ]] \
        && grep -v '^[#;]' "$conf" | grep . >"$dir/register" 2>/dev/null; then
        log "registered $name with binfmt_misc"
        return 0
    fi
    warn "could not register $name with binfmt_misc: tests that run the binary as a child process will fail"
    return 1
}

if [[ $DO_INSTALL == 1 ]]; then
    install_deps
fi
[[ $MODE == install ]] && { log "setup done"; exit 0; }

# ------------------------------------------------------------------ build ---
[[ -x /usr/bin/cargo && -x /usr/bin/rustc ]] || die "/usr/bin/cargo or /usr/bin/rustc missing (run without --no-install)"
export RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc
export CARGO_TARGET_DIR="$TARGET_DIR"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-auto}"
# rustup's toolchain overrides must not leak into Debian's cargo/rustc.
unset RUSTUP_TOOLCHAIN CARGO_BUILD_TARGET RUSTFLAGS CARGO_ENCODED_RUSTFLAGS || true
log "toolchain: $(/usr/bin/cargo --version), $($RUSTC --version)"

cd "$REPO_DIR"
rc=0
declare -A RESULT=()
for t in "${TARGETS[@]}"; do
    triple="${TRIPLE[$t]}" gnu="${GNU[$t]}"
    up="$(tr 'a-z-' 'A-Z_' <<<"$triple")"   # AARCH64_UNKNOWN_LINUX_GNU
    lo="${triple//-/_}"                      # aarch64_unknown_linux_gnu
    command -v "$gnu-gcc" >/dev/null || die "$gnu-gcc not found (install ${GCCPKG[$t]})"
    [[ "$t" == x86_64 ]] || compgen -G "/usr/lib/rustlib/$triple/lib/libstd-*.rlib" >/dev/null \
        || die "no Rust std for $triple in /usr/lib/rustlib (run without --no-install)"
    envs=(
        "CARGO_TARGET_${up}_LINKER=$gnu-gcc"
        "CC_${lo}=$gnu-gcc"
        "CXX_${lo}=$gnu-g++"
        "AR_${lo}=$gnu-ar"
    )
    if [[ -n "${QEMU[$t]}" ]]; then
        command -v "${QEMU[$t]}" >/dev/null || die "${QEMU[$t]} not found (install qemu-user-static)"
        envs+=("CARGO_TARGET_${up}_RUNNER=${QEMU[$t]} -L /usr/$gnu"
               # lets binfmt-launched children (tests spawning the binary) find the loader
               "QEMU_LD_PREFIX=/usr/$gnu"
               # tests that start the binary as a child use the emulator directly
               # when binfmt_misc cannot be registered
               "MEDIASYNC_TEST_RUNNER=${QEMU[$t]} -L /usr/$gnu")
    fi

    if [[ $MODE == test ]]; then
        [[ -n "${BINFMT[$t]}" ]] && { ensure_binfmt "${BINFMT[$t]}" || true; }
        log "cargo test --locked --target $triple ${EXTRA_ARGS[*]:-}"
        if env "${envs[@]}" /usr/bin/cargo test --locked --target "$triple" "${EXTRA_ARGS[@]}"; then
            RESULT[$t]="tests passed"
        else
            RESULT[$t]="TESTS FAILED"; rc=1
        fi
        continue
    fi

    log "cargo build --release --locked ${FEATURE_ARGS[*]} --target $triple"
    if ! env "${envs[@]}" /usr/bin/cargo build --release --locked "${FEATURE_ARGS[@]}" --target "$triple"; then
        RESULT[$t]="BUILD FAILED"; rc=1; continue
    fi
    bin="$CARGO_TARGET_DIR/$triple/release/$BIN_NAME"
    [[ -f "$bin" ]] || { RESULT[$t]="BUILD FAILED (no $bin)"; rc=1; continue; }
    # The release profile already strips; strip again with the cross binutils
    # to be sure the reported size is the stripped one.
    "$gnu-strip" "$bin" 2>/dev/null || strip "$bin" 2>/dev/null || true
    size="$(stat -c %s "$bin")"
    glibc="$("$gnu-objdump" -T "$bin" 2>/dev/null | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1 || true)"
    RESULT[$t]="$(printf '%s  %s bytes (%s, %s), needs %s' "${bin#"$REPO_DIR"/}" "$size" \
        "$(numfmt --to=iec-i --suffix=B "$size")" "$BUILD_NAME" "${glibc:-?}")"
done

echo
log "summary (rustc $($RUSTC --version | awk '{print $2}'))"
for t in "${TARGETS[@]}"; do printf '  %-8s %-32s %s\n' "$t" "${TRIPLE[$t]}" "${RESULT[$t]:-?}"; done
exit $rc
