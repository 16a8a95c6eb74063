"""The password that guards destructive actions: GRUB's own PBKDF2 format, so one hash (from
`grub-mkpasswd-pbkdf2`) protects both the GRUB entries and the agent's reset actions and shell.

    grub.pbkdf2.sha512.ITERATIONS.SALT.HASH     (SALT and HASH in hexadecimal)
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

_FORMAT = re.compile(r"grub\.pbkdf2\.sha512\.([0-9]{1,7})\.([0-9A-Fa-f]{16,1024})\.([0-9A-Fa-f]{32,256})")
MIN_ITERATIONS = 1000


@dataclass(frozen=True)
class PasswordHash:
    iterations: int
    salt: bytes
    digest: bytes

    def matches(self, password: str) -> bool:
        got = hashlib.pbkdf2_hmac(
            "sha512", password.encode("utf-8"), self.salt, self.iterations, dklen=len(self.digest)
        )
        return hmac.compare_digest(got, self.digest)


def hash_problem(text: str) -> str | None:
    """Why `text` is not a hash GRUB's password_pbkdf2 accepts, or None."""
    match = _FORMAT.fullmatch(text)
    if match is None:
        return "expected grub.pbkdf2.sha512.ITERATIONS.SALT.HASH, as grub-mkpasswd-pbkdf2 prints it"
    if int(match.group(1)) < MIN_ITERATIONS:
        return f"fewer than {MIN_ITERATIONS} iterations"
    if len(match.group(2)) % 2 or len(match.group(3)) % 2:
        return "the salt and the hash must be whole bytes of hexadecimal"
    return None


def parse_hash(text: str) -> PasswordHash:
    problem = hash_problem(text)
    if problem is not None:
        raise ValueError(problem)
    _grub, _pbkdf2, _sha, iterations, salt, digest = text.split(".")
    return PasswordHash(int(iterations), bytes.fromhex(salt), bytes.fromhex(digest))


def make_hash(password: str, salt: bytes, iterations: int = 10000) -> str:
    """What grub-mkpasswd-pbkdf2 prints for this password and salt (for tests and the test bed)."""
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations, dklen=64)
    return f"grub.pbkdf2.sha512.{iterations}.{salt.hex().upper()}.{digest.hex().upper()}"
