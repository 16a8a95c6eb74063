#!/bin/sh
# packaging/build-deb.sh OUTDIR - build bootagent_<version>_all.deb from the working tree with dpkg-deb.
# Prints the path of the .deb. Nothing is byte-compiled into the tree it builds.
set -eu

here=$(cd "$(dirname "$0")/.." && pwd)
out=${1:?usage: build-deb.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n 's/^version[[:space:]]*=[[:space:]]*"\([^"]*\)".*/\1/p' "$here/pyproject.toml" | head -n 1)
[ -n "$version" ] || { echo "build-deb: no version in pyproject.toml" >&2; exit 1; }

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
pkgdir=$stage/bootagent
py=$pkgdir/usr/lib/python3/dist-packages/bootagent
mkdir -p "$pkgdir/DEBIAN" "$py" "$pkgdir/usr/sbin"

# The Python package: whatever is in the tree (no caches, no compiled files).
(cd "$here/bootagent" && find . -type f \( -name '*.py' -o -path './data/*' -o -path './zfs/lua/*.lua' \
        -o -name 'py.typed' \) ! -path '*/__pycache__/*' -print) | sort | while read -r f; do
    mkdir -p "$py/$(dirname "$f")"
    cp "$here/bootagent/$f" "$py/$f"
done

cat > "$pkgdir/usr/sbin/bootagent" <<'EOF'
#!/usr/bin/python3
"""bootagent command line (installed by the Debian package)."""
from bootagent.cli.main import main

raise SystemExit(main())
EOF
chmod 0755 "$pkgdir/usr/sbin/bootagent"

conffiles=
if [ -f "$here/bootagent/data/bootagent.yaml" ]; then
    mkdir -p "$pkgdir/etc/bootagent"
    cp "$here/bootagent/data/bootagent.yaml" "$pkgdir/etc/bootagent/bootagent.yaml"
    conffiles=/etc/bootagent/bootagent.yaml
fi

copy_dir() { # SRC_DIR DEST_DIR MODE: the regular files of SRC_DIR, if any
    [ -d "$1" ] || return 0
    for f in "$1"/*; do
        [ -f "$f" ] || continue
        mkdir -p "$2"
        cp "$f" "$2/"
        chmod "$3" "$2/$(basename "$f")"
    done
}
copy_dir "$here/grub.d" "$pkgdir/etc/grub.d" 0755
# The agent's own image is built by bootagent-mkinitrd, which update-initramfs runs after every update through
# its post-update.d hook; the ordinary initramfs only gets the init-premount script.
install -D -m 0755 "$here/initramfs-hooks/bootagent-mkinitrd" "$pkgdir/usr/sbin/bootagent-mkinitrd"
install -D -m 0755 "$here/initramfs-hooks/post-update.d/bootagent" "$pkgdir/etc/initramfs/post-update.d/bootagent"
conffiles="$conffiles
/etc/initramfs/post-update.d/bootagent"
if [ -d "$here/initramfs-hooks/scripts" ]; then
    for d in "$here"/initramfs-hooks/scripts/*/; do
        [ -d "$d" ] || continue
        copy_dir "$d" "$pkgdir/usr/share/initramfs-tools/scripts/$(basename "$d")" 0755
    done
fi
copy_dir "$here/systemd" "$pkgdir/lib/systemd/system" 0644
# apt's hooks: one checkpoint per apt run (bootagent apt-hook).
install -D -m 0644 "$here/apt/80bootagent" "$pkgdir/etc/apt/apt.conf.d/80bootagent"
conffiles="$conffiles
/etc/apt/apt.conf.d/80bootagent"
# Health checks an administrator or an appliance drops in (see README: unattended recovery).
mkdir -p "$pkgdir/etc/bootagent/health.d/required" "$pkgdir/etc/bootagent/health.d/wanted"
for f in "$pkgdir"/etc/grub.d/*; do
    [ -f "$f" ] && conffiles="$conffiles
/etc/grub.d/$(basename "$f")"
done

size=$(du -sk "$pkgdir" | cut -f1)
cat > "$pkgdir/DEBIAN/control" <<EOF
Package: bootagent
Version: $version
Architecture: all
Maintainer: bootagent developers <root@localhost>
Installed-Size: $size
Depends: python3, python3-yaml, python3-pyzfs, python3-pyudev, python3-blessed, zfsutils-linux, init-system-helpers
Section: admin
Priority: optional
Description: early-boot recovery agent and boot-environment manager for ZFS-root systems
 Manages ZFS boot environments, integrates with GRUB through grubenv and offers a
 recovery menu at boot.
EOF
# Byte-compile on install and clean on removal, as Debian's python3 packages do, so no stray
# __pycache__ is left that dpkg does not own.
# Image builders that run update-initramfs themselves afterwards set BOOTAGENT_NO_INITRAMFS_UPDATE=1 (as the
# kernel's postinst honours INITRD=No); otherwise update-initramfs defers itself to dpkg's trigger.
cat > "$pkgdir/DEBIAN/postinst" <<'SCRIPT'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
    if command -v py3compile >/dev/null 2>&1; then
        py3compile -p bootagent
    fi
    # GRUB's 10_linux and 20_linux_xen make entries that know nothing of boot environments (they boot
    # whichever environment ran update-grub). Keep them from running the Debian way: a stat override, which
    # dpkg applies again whenever grub upgrades them. An administrator's own override is left alone.
    # 42_bootagent runs 10_linux itself whenever bootagent has no entries to offer.
    for f in /etc/grub.d/10_linux /etc/grub.d/20_linux_xen; do
        if ! dpkg-statoverride --list "$f" >/dev/null 2>&1; then
            dpkg-statoverride --update --add root root 0644 "$f"
        fi
    done
    # Boot counting is only safe with something that marks good boots: the three units are enabled on
    # install, as debhelper does (an administrator's later 'disable' is kept across upgrades), and so are
    # the timers of the daily prune and of node_exporter's textfile.
    for unit in bootagent-boot-start.service bootagent-health.service bootagent-bless.service \
        bootagent-prune.timer bootagent-textfile.timer; do
        deb-systemd-helper unmask "$unit" >/dev/null || true
        if deb-systemd-helper --quiet was-enabled "$unit"; then
            deb-systemd-helper enable "$unit" >/dev/null || true
        else
            deb-systemd-helper update-state "$unit" >/dev/null || true
        fi
    done
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
        for timer in bootagent-prune.timer bootagent-textfile.timer; do
            if deb-systemd-helper --quiet is-enabled "$timer"; then
                deb-systemd-invoke start "$timer" >/dev/null || true
            fi
        done
    fi
    if [ "${BOOTAGENT_NO_INITRAMFS_UPDATE:-0}" != 1 ] && command -v update-initramfs >/dev/null 2>&1; then
        update-initramfs -u
    fi
    # GRUB's menu, as packages with /etc/grub.d scripts do (only where GRUB's config is there to update).
    if [ -e /boot/grub/grub.cfg ] && command -v update-grub >/dev/null 2>&1; then
        update-grub || echo "bootagent: update-grub failed; run it again once the problem is fixed" >&2
    fi
fi
SCRIPT
cat > "$pkgdir/DEBIAN/prerm" <<'SCRIPT'
#!/bin/sh
set -e
# the timers stop with the package (debhelper does the same); upgrades keep them running
if [ "$1" = remove ] && [ -d /run/systemd/system ]; then
    deb-systemd-invoke stop bootagent-prune.timer bootagent-textfile.timer >/dev/null || true
fi
if command -v py3clean >/dev/null 2>&1; then
    py3clean -p bootagent
fi
SCRIPT
cat > "$pkgdir/DEBIAN/postrm" <<'SCRIPT'
#!/bin/sh
set -e
case "$1" in
remove | purge)
    rm -f /boot/bootagent.img /run/motd.d/bootagent
    for unit in bootagent-boot-start.service bootagent-health.service bootagent-bless.service \
        bootagent-prune.timer bootagent-textfile.timer; do
        if [ "$1" = purge ]; then
            deb-systemd-helper purge "$unit" >/dev/null || true
        else
            deb-systemd-helper mask "$unit" >/dev/null || true
        fi
    done
    if [ -d /run/systemd/system ]; then
        systemctl --system daemon-reload >/dev/null || true
    fi
    # give GRUB its ordinary entries back (only the overrides this package made: root root 644)
    for f in /etc/grub.d/10_linux /etc/grub.d/20_linux_xen; do
        if [ "$(dpkg-statoverride --list "$f" 2>/dev/null)" = "root root 644 $f" ]; then
            dpkg-statoverride --remove "$f"
            if [ -e "$f" ]; then chmod 0755 "$f"; fi
        fi
    done
    if [ "${BOOTAGENT_NO_INITRAMFS_UPDATE:-0}" != 1 ] && command -v update-initramfs >/dev/null 2>&1; then
        update-initramfs -u
    fi
    if [ -e /boot/grub/grub.cfg ] && command -v update-grub >/dev/null 2>&1; then
        update-grub || true
    fi
    ;;
esac
SCRIPT
chmod 0755 "$pkgdir/DEBIAN/postinst" "$pkgdir/DEBIAN/prerm" "$pkgdir/DEBIAN/postrm"

if [ -n "$conffiles" ]; then
    printf '%s\n' "$conffiles" | sed '/^$/d' > "$pkgdir/DEBIAN/conffiles"
fi

deb=$out/bootagent_${version}_all.deb
# Fixed mtimes so the same tree gives the same .deb (the agent layer is keyed by its sha256).
find "$pkgdir" -exec touch -h -d @0 {} +
SOURCE_DATE_EPOCH=0 dpkg-deb --root-owner-group -Zxz --build "$pkgdir" "$deb" >/dev/null
echo "$deb"
