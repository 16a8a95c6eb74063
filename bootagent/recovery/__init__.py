"""Unattended recovery: boot counting, health checks, blessing and the ladder of fallbacks.

counter.py   the attempt counter GRUB keeps in grubenv (the values GRUB's generated code understands)
ladder.py    the ladder's state machine: pure, moves only forward until a good boot resets it
store.py     where the ladder, the last recovery and this boot's health record persist (the state dataset)
health.py    the administrator's check scripts (required and wanted), run before boot-complete.target
watchdog.py  the hardware watchdog that fails a boot which never completes
lifecycle.py boot-start (re-arm), health and bless on the running system
report.py    what happened, in words, for status, the login message and the journal
"""
