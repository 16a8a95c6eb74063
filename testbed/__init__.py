"""bootagent's real-system test bed: a ZFS-root Debian guest with GRUB under QEMU (Python driven)."""
