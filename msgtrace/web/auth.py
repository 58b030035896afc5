"""HTTP Basic users of `msgtrace web`: an auth file of `user:hash` lines, hashes by scrypt (stdlib).

    alice:scrypt$16384$8$1$<salt, base64>$<key, base64>

The clear password is never written. Checking a password costs a scrypt derivation (tens of
milliseconds, on purpose); the server remembers the headers it has verified (a keyed digest of
them, not the passwords), so a script polling the API pays it once.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import re
import secrets
import tempfile
from pathlib import Path

# RFC 7914's interactive parameters: 16 MiB of memory per derivation.
N, R, P = 2**14, 8, 1
KEY_BYTES = 32
SCHEME = "scrypt"
USER_NAME = re.compile(r"^[A-Za-z0-9._@+-]{1,64}$")
_MAX_REMEMBERED = 256


class AuthError(ValueError):
    """A bad auth file, user name or password; the message is meant for the user."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """The stored form of a password: scheme, cost parameters, salt and derived key."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=KEY_BYTES, maxmem=64 * 2**20)
    b64 = base64.b64encode
    return f"{SCHEME}${N}${R}${P}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, stored: str) -> bool:
    """Whether password derives the stored key (compared in constant time)."""
    try:
        scheme, n, r, p, salt, key = stored.split("$")
        if scheme != SCHEME:
            return False
        expected = base64.b64decode(key, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 2**20,
        )
    except (ValueError, binascii.Error):
        return False
    return hmac.compare_digest(got, expected)


def check_user_name(user: str) -> str:
    """A user name fit for a `user:hash` line and a Basic header."""
    if not USER_NAME.match(user):
        raise AuthError(f"invalid user name {user!r}: use 1-64 letters, digits or . _ @ + -")
    return user


def read_users(path: Path) -> dict[str, str]:
    """user -> stored hash from an auth file; AuthError when it is missing or malformed."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise AuthError(f"cannot read --auth-file {str(path)!r}: {e.strerror or e}") from None
    users: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not USER_NAME.match(user) or not stored.startswith(SCHEME + "$"):
            raise AuthError(
                f"--auth-file {str(path)!r} line {number} is not a user:hash line: "
                "write it with `msgtrace web-user add --auth-file FILE USER`"
            )
        users[user] = stored
    return users


def add_user(path: Path, user: str, password: str) -> bool:
    """Add or replace user's line in the auth file (created mode 0600); True when the user was new."""
    check_user_name(user)
    if not password:
        raise AuthError("the password is empty")
    users = read_users(path) if path.exists() else {}
    new = user not in users
    users[user] = hash_password(password)
    body = "".join(f"{u}:{h}\n" for u, h in users.items())
    _write_private(path, body)
    return new


def _write_private(path: Path, text: str) -> None:
    """Replace the auth file atomically (never half-written), readable by its owner alone from the
    first byte: mkstemp creates the temp file 0600. (Not the store's writer, which follows the umask.)"""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


class Authenticator:
    """Checks `Authorization: Basic ...` headers against the auth file's users."""

    def __init__(self, users: dict[str, str]) -> None:
        if not users:
            raise AuthError("the --auth-file has no users: add one with `msgtrace web-user add --auth-file FILE USER`")
        self.users = users
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, str] = {}
        # an unknown user costs the same derivation as a known one: no timing hint about names
        self._dummy = hash_password(secrets.token_urlsafe(16))

    def user(self, header: str | None) -> str | None:
        """The user a header authenticates, or None."""
        if not header or not header[:6].lower() == "basic ":
            return None
        digest = hmac.digest(self._key, header.encode("utf-8", "replace"), "sha256")
        known = self._verified.get(digest)
        if known is not None:
            return known
        try:
            user, sep, password = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
        except (ValueError, binascii.Error):
            return None
        if not sep:
            return None
        ok = verify_password(password, self.users.get(user, self._dummy)) and user in self.users
        if not ok:
            return None
        if len(self._verified) >= _MAX_REMEMBERED:
            self._verified.clear()
        self._verified[digest] = user
        return user
