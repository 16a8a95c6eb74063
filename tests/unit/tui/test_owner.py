"""One console owns the menu: the other says where it is and waits."""

from __future__ import annotations

import io
from pathlib import Path

from bootagent.tui.owner import MenuLock, menu_owner


def test_only_one_console_holds_the_lock(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "menu.lock")
    serial = MenuLock("ttyS0", path)
    local = MenuLock("tty1", path)
    assert serial.acquire()
    assert serial.acquire()  # again: still ours
    assert not local.acquire()
    assert local.holder() == "ttyS0"
    serial.release()
    assert local.acquire()
    assert serial.holder() == "tty1"
    local.release()


def test_the_other_console_waits_and_says_where_the_menu_is(tmp_path: Path) -> None:
    path = str(tmp_path / "menu.lock")
    owner = MenuLock("ttyS0", path)
    assert owner.acquire()
    out = io.StringIO()
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 3:
            owner.release()  # the menu on ttyS0 ends

    with menu_owner("tty1", out, path=path, poll=0.5, sleep=sleep) as lock:
        assert lock.holder() == "tty1"
    assert sleeps == [0.5, 0.5, 0.5]
    assert out.getvalue() == "bootagent: the menu is active on ttyS0; waiting for it here\r\n"
    assert MenuLock("tty2", path).acquire()  # released on leaving the block
