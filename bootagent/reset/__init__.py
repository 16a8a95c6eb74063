"""The factory reset: the sealed baselines (baseline), the plan of a reset (plan, pure), its persisted state
(store) and the idempotent steps that carry it out (run). Nothing here imports the agent or the TUI."""
