"""Ed25519 keys: generating them, their files, their text forms and ids.

PyNaCl (libsodium) does the cryptography; this module only gives keys the
forms people handle:

- a public key as text, ``ed25519:<base64 of its 32 bytes>``: what
  ``wasihost bundle keygen`` prints and what ``[trust] keys`` lists;
- a key id, the first 16 hex digits of the SHA-256 of the public key's bytes:
  what a manifest names as its signer, so a node finds which trusted key to
  check with (the id is a hint, never trust: the signature is always checked
  against the trusted key itself);
- a private key file: one line ``ed25519-private:<base64 of the 32-byte
  seed>``, created with mode 0600 and refused when others may read it, as
  ssh refuses a private key others may read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

import nacl.exceptions
import nacl.signing

from wasihost.errors import BundleError

PUBLIC_PREFIX = "ed25519:"
PRIVATE_PREFIX = "ed25519-private:"
KEY_BYTES = 32
SIGNATURE_BYTES = 64


def _b64(text: str) -> bytes:
    """Strict base64 (no stray characters), else ValueError."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None


@dataclass(frozen=True)
class PublicKey:
    raw: bytes

    @property
    def text(self) -> str:
        return PUBLIC_PREFIX + base64.b64encode(self.raw).decode()

    @property
    def key_id(self) -> str:
        return hashlib.sha256(self.raw).hexdigest()[:16]

    def verifies(self, message: bytes, signature: bytes) -> bool:
        """Whether ``signature`` is this key's over ``message``."""
        try:
            nacl.signing.VerifyKey(self.raw).verify(message, signature)
        except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError):
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    seed: bytes

    @property
    def public(self) -> PublicKey:
        return PublicKey(bytes(nacl.signing.SigningKey(self.seed).verify_key))

    def sign(self, message: bytes) -> bytes:
        """The 64-byte signature (Ed25519 is deterministic: same message, same bytes)."""
        return nacl.signing.SigningKey(self.seed).sign(message).signature


def generate_key() -> SigningKey:
    return SigningKey(bytes(nacl.signing.SigningKey.generate()))


def parse_public_key(text: str) -> PublicKey:
    """``ed25519:<base64>`` as ``keygen`` prints it; ValueError says what is wrong."""
    expected = (
        f'expected "{PUBLIC_PREFIX}<base64 of {KEY_BYTES} bytes>" as wasihost bundle keygen '
        "prints it"
    )
    if text.startswith(PRIVATE_PREFIX):
        raise ValueError(f"that is a private key; give the public one (KEYFILE.pub): {expected}")
    if not text.startswith(PUBLIC_PREFIX):
        raise ValueError(expected)
    try:
        raw = _b64(text.removeprefix(PUBLIC_PREFIX))
    except ValueError:
        raise ValueError(f"not base64 after {PUBLIC_PREFIX!r}: {expected}") from None
    if len(raw) != KEY_BYTES:
        raise ValueError(f"{len(raw)} bytes, not {KEY_BYTES}: {expected}")
    return PublicKey(raw)


def write_key_pair(path: Path) -> SigningKey:
    """A new key in ``path`` (mode 0600, never over an existing file) and its
    public key in ``path.pub``."""
    public_path = path.with_name(path.name + ".pub")
    for existing in (path, public_path):
        if existing.exists():
            raise BundleError(f"{existing}: already exists; not overwriting a key")
    key = generate_key()
    line = f"{PRIVATE_PREFIX}{base64.b64encode(key.seed).decode()}\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise BundleError(f"{path}: cannot create: {exc.strerror}") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(line)
    public_path.write_text(key.public.text + "\n", encoding="ascii")
    return key


def read_signing_key(path: Path) -> SigningKey:
    """The private key in ``path``; refused if others may read it or it is not one."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise BundleError(
            f"{path}: key file not found (make one with wasihost bundle keygen)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not a key file"
        raise BundleError(f"{path}: cannot read the key: {why}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise BundleError(
            f"{path}: a private key readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"chmod 600 {path}"
        )
    if text.startswith(PUBLIC_PREFIX):
        raise BundleError(f"{path}: a public key; signing needs the private key file")
    try:
        if not text.startswith(PRIVATE_PREFIX):
            raise ValueError("no prefix")
        seed = _b64(text.removeprefix(PRIVATE_PREFIX))
    except ValueError:
        seed = b""
    if len(seed) != KEY_BYTES:
        raise BundleError(
            f'{path}: not a private key: expected one line "{PRIVATE_PREFIX}<base64 of '
            f'{KEY_BYTES} bytes>" as wasihost bundle keygen writes it'
        )
    return SigningKey(seed)
