"""bootagent: boot environments, rollback and recovery for ZFS-root Linux."""

__version__ = "0.1.0"
