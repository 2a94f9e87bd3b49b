"""Password hashing with argon2id (OWASP's minimum parameters: 19 MiB, 2 passes)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Each check allocates 19 MiB and glibc keeps it in the arena of the thread that ran it; two
# dedicated threads bound that memory whatever the number of API worker threads.
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="argon2")


def hash_password(password: str) -> str:
    return _pool.submit(_hasher.hash, password).result()


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _pool.submit(_hasher.verify, password_hash, password).result()
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
