"""Password hashing (argon2id, OWASP parameters) and the password policy."""

from __future__ import annotations

import asyncio
import functools
import gc
import sys
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.text import fold

# OWASP Password Storage Cheat Sheet, first option for argon2id: m = 19 MiB, t = 2, p = 1.
HASHER = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1, hash_len=32, salt_len=16)
# Each hash takes 19 MiB and ~50 ms of a core. Two threads at most: a burst of sign-ins queues here
# instead of taking a 19 MiB block (which the allocator keeps) in each of the default pool's 40 threads.
_HASHING = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")

# Said often enough on Vietnamese sites to be guessed first; the 30,000 most common passwords
# worldwide come from zxcvbn's frequency list.
VIETNAMESE_COMMON = {
    "matkhau", "matkhau123", "anhyeuem", "anhyeuem123", "emyeuanh", "yeuem123", "iloveyou123",
    "12345678a", "123456789a", "a123456789", "vietnam", "vietnam123", "hanoi123", "saigon123",
    "111111111", "88888888", "66666666", "123123123", "conmeo123", "khongbiet", "xinchao123",
}


@functools.cache
def common_passwords() -> frozenset[str]:
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    words = frozenset(FREQUENCY_LISTS["passwords"]) | VIETNAMESE_COMMON
    # Only the password list is needed; zxcvbn's other lists and dictionaries weigh ~8 MB more.
    del FREQUENCY_LISTS
    for name in [m for m in sys.modules if m == "zxcvbn" or m.startswith("zxcvbn.")]:
        del sys.modules[name]
    gc.collect()
    return words


def password_problem(password: str, *, phone: str = "", name: str = "") -> str | None:
    """Why ``password`` is refused, or None. Length is checked by the schema (8–128)."""
    folded = fold(password).replace(" ", "")
    if "\x00" in password:
        return "The password must not contain NUL characters"
    if folded in common_passwords() or password.lower() in common_passwords():
        return "This password is one of the most common ones; choose another"
    if len(set(password)) < 3:
        return "The password repeats too few characters"
    digits = phone.lstrip("+")
    if digits and (digits[-9:] in password or ("0" + digits[-9:]) in password):
        return "The password must not contain your phone number"
    if name and len(name) >= 4 and fold(name).replace(" ", "") == folded:
        return "The password must not be your name"
    return None


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_HASHING, HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    return await asyncio.get_running_loop().run_in_executor(_HASHING, check)


# Verified against when the login names no account, so that the reply takes as long either way.
_DUMMY_HASH = HASHER.hash("no-such-account-placeholder")


async def burn_time(password: str) -> None:
    await verify_password(_DUMMY_HASH, password)
