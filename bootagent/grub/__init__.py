"""GRUB's side of bootagent: the menu entries (menu.py), GRUB script quoting (script.py), and what
update-grub's environment and the system provide for them (generate.py)."""
