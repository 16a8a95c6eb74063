"""Behaviour shared by every ZfsBackend: run against tests.fakes.FakeZfs in the quick tier and against the
real pool in a VM guest (zfs_contract.py runs there on its own)."""
