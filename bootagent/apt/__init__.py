"""apt integration: a checkpoint before each apt run (hook.py), from what apt tells its hooks
(protocol.py)."""
