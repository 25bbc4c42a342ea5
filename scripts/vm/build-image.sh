#!/usr/bin/env bash
# Builds the Debian 12 guest that scripts/vm-test.sh boots: a debootstrap
# minbase tree with systemd, a kernel and a few tools, turned into a raw ext4
# disk without loop mounts. scripts/vm-test.sh hashes this file into the
# image's cache key, so any change here rebuilds the image.
#
#   scripts/vm/build-image.sh OUT_DIR MIRROR
#
# Writes OUT_DIR/disk.img (3 GiB, sparse), OUT_DIR/vmlinuz, OUT_DIR/initrd.img.
# Needs root, debootstrap and mke2fs (e2fsprogs 1.43 or newer for -d).
set -euo pipefail
[[ $# == 2 ]] || { echo "usage: $0 OUT_DIR MIRROR" >&2; exit 2; }
out="$1"
mirror="$2"
suite=bookworm
# systemd as PID 1 and its tools (systemd-analyze), a kernel and initramfs,
# curl and python3 for the guest side of the test, nftables to count packets
# leaving the guest, dbus as on any real install.
packages=systemd,systemd-sysv,udev,dbus,curl,procps,iproute2,kmod,nftables,python3,linux-image-amd64,initramfs-tools

root="$out/rootfs"
rm -rf "$root" "$out/disk.img" "$out/vmlinuz" "$out/initrd.img"
mkdir -p "$root"
debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$mirror" >"$out/debootstrap.log" 2>&1 || {
    tail -n 30 "$out/debootstrap.log" >&2
    echo "debootstrap of $suite from $mirror failed (log: $out/debootstrap.log)" >&2
    exit 1
}

printf 'vmtest\n' >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vmtest\n::1 localhost\n' >"$root/etc/hosts"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$root/etc/fstab"
ln -sf /usr/share/zoneinfo/Etc/UTC "$root/etc/localtime"
# A machine id now, so the first boot is not a "first boot" that could wait
# for answers on the console.
rm -f "$root/etc/machine-id"
systemd-machine-id-setup --root="$root" >/dev/null 2>&1

# qemu's DHCP (restrict=on) offers neither a router nor a DNS server; a box
# on a LAN has both. Give the guest both, so a connection attempt to any
# address leaves as a packet (counted by the unedited-config check) and
# qemu drops it.
mkdir -p "$root/etc/systemd/network"
cat >"$root/etc/systemd/network/20-wired.network" <<'EOF'
[Match]
Name=eth* en*

[Network]
DHCP=ipv4
Gateway=10.0.2.2
EOF
printf 'nameserver 10.0.2.3\n' >"$root/etc/resolv.conf"

# A persistent journal, flushed often: after a failure the host reads it from
# the disk image (debugfs), also when the guest hung.
mkdir -p "$root/var/log/journal" "$root/etc/systemd/journald.conf.d"
cat >"$root/etc/systemd/journald.conf.d/vmtest.conf" <<'EOF'
[Journal]
Storage=persistent
SyncIntervalSec=5s
EOF

# The guest side of the test comes on a second disk (/dev/vdb) made for each
# run, so a change to the test never rebuilds this image.
cat >"$root/etc/systemd/system/vmtest-runner.service" <<'EOF'
[Unit]
Description=scripts/vm-test.sh: the guest side of the test (from /dev/vdb)
After=multi-user.target

[Service]
Type=oneshot
ExecStart=/bin/sh -c 'mkdir -p /run/vmtest && mount -o ro /dev/vdb /run/vmtest && exec /bin/bash /run/vmtest/guest.sh'
StandardOutput=journal+console
TimeoutStartSec=infinity

[Install]
WantedBy=multi-user.target
EOF

systemctl --root="$root" enable systemd-networkd.service vmtest-runner.service >/dev/null 2>&1
# Timers that would only take CPU from the emulated guest, and the prompt a
# first boot may show.
for unit in apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service fstrim.timer systemd-firstboot.service; do
    systemctl --root="$root" mask "$unit" >/dev/null 2>&1 || true
done

# Drivers for emulated hardware the test never uses (floppy, IDE, PC
# speaker, wireless regulatory, CPU crypto): under TCG every module loaded
# at boot costs seconds.
mkdir -p "$root/etc/modprobe.d"
for module in floppy pcspkr ata_piix ata_generic pata_acpi cfg80211 i2c_piix4 joydev serio_raw \
    aesni_intel ghash_clmulni_intel sha512_ssse3 crc32_pclmul; do
    printf 'blacklist %s\n' "$module"
done >"$root/etc/modprobe.d/vmtest.conf"

# An initramfs with only what finds and mounts a virtio ext4 root (6 MB
# instead of 36): the emulated guest unpacks and probes less at boot.
printf 'MODULES=list\n' >"$root/etc/initramfs-tools/conf.d/vmtest.conf"
printf 'virtio_pci\nvirtio_blk\next4\ncrc32c_generic\n' >>"$root/etc/initramfs-tools/modules"
mount -t proc proc "$root/proc"
trap 'umount "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" update-initramfs -u -k all >"$out/initramfs.log" 2>&1 || {
    cat "$out/initramfs.log" >&2
    exit 1
}
umount "$root/proc"

cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)" "$out/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)" "$out/initrd.img"
rm -rf "$root/var/cache/apt/archives"/*.deb
mkfs.ext4 -q -F -L vmroot -d "$root" "$out/disk.img" 3G
rm -rf "$root"
