"""The early-boot menu: a full-screen menu (blessed) and a numbered line mode for dumb terminals.

state.py   the menu as a pure state machine (keys in, effects out) and the action registry
render.py  state -> exact lines of text for a screen size (ASCII fallbacks, no colour by itself)
app.py     the thin blessed loop: keys, timers, a worker thread for slow session calls, diff redraw
lines.py   the same state machine driven by numbered lines (TERM=dumb, pipes, the slowest serial link)
owner.py   one console owns the menu at a time (a lock in /run/bootagent)
launch.py  what the boot agent calls: settings from config and kernel command line, then one of the above
"""
