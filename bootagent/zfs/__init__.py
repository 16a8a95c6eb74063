"""The ZFS layer: one narrow interface (`ZfsBackend`) and its adapters."""
