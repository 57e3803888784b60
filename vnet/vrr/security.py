"""Optional VRR security with a shared network key.

* Per hop: every frame carries a 16-byte truncated HMAC-SHA256 over the whole
  VRR message (header with hop source and sequence number included). A
  receiver keeps, per hop source, the highest sequence number and a 64-bit
  window, so a replayed frame is rejected.
* End to end: data and DHT payloads are sealed with AES-GCM; the nonce is the
  origin's address and a 48-bit counter the origin never repeats, and the
  header fields that do not change per hop are authenticated with it.

Keys are derived from the network key with HKDF (separate MAC and cipher keys).
"""

from __future__ import annotations

import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as chmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MAC_LEN = 16
SEAL_PREFIX = struct.Struct("!HIH")  # counter hi, lo, reserved
AAD = struct.Struct("!BHHIHI")  # type, next header, dst, origin
WINDOW = 64


class KeyError_(ValueError):
    """A key file that cannot be used (message says why)."""


def load_key(path: str) -> bytes:
    """Read a network key: at least 16 bytes, raw or as hex text."""
    try:
        with open(path, "rb") as f:
            raw = f.read(4096)
    except OSError as e:
        raise KeyError_(f"cannot read key file {path}: {e.strerror}") from None
    text = raw.strip()
    try:
        key = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        key = raw
    if len(key) < 16:
        raise KeyError_(f"key file {path} holds {len(key)} bytes: use at least 16 "
                        f"(e.g. `head -c 32 /dev/urandom | xxd -p -c 64 > {path}`)")
    return key


class NetworkKey:
    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise KeyError_("a network key needs at least 16 bytes")
        okm = HKDF(hashes.SHA256(), 64, salt=b"vnet-vrr-1", info=b"mac+enc").derive(key)
        self._mac_key = okm[:32]
        self._aead = AESGCM(okm[32:])

    def mac(self, data: bytes) -> bytes:
        h = chmac.HMAC(self._mac_key, hashes.SHA256())
        h.update(data)
        return h.finalize()[:MAC_LEN]

    def check(self, data: bytes, tag: bytes) -> bool:
        h = chmac.HMAC(self._mac_key, hashes.SHA256())
        h.update(data)
        full = h.finalize()
        # constant-time comparison of the truncated tag
        diff = 0
        for a, b in zip(full[:MAC_LEN], tag, strict=True):
            diff |= a ^ b
        return diff == 0

    @staticmethod
    def _aad(typ: int, nh: int, dst: int, origin: int) -> bytes:
        return AAD.pack(typ, nh, dst >> 32, dst & 0xFFFFFFFF, origin >> 32, origin & 0xFFFFFFFF)

    def seal(self, counter: int, typ: int, nh: int, dst: int, origin: int, plain: bytes) -> bytes:
        nonce = origin.to_bytes(6, "big") + counter.to_bytes(6, "big")
        prefix = SEAL_PREFIX.pack(counter >> 32, counter & 0xFFFFFFFF, 0)
        return prefix + self._aead.encrypt(nonce, plain, self._aad(typ, nh, dst, origin))

    def open(self, typ: int, nh: int, dst: int, origin: int, sealed: bytes) -> bytes | None:
        if len(sealed) < SEAL_PREFIX.size + 16:
            return None
        hi, lo, _ = SEAL_PREFIX.unpack_from(sealed, 0)
        nonce = origin.to_bytes(6, "big") + ((hi << 32) | lo).to_bytes(6, "big")
        try:
            return self._aead.decrypt(nonce, bytes(sealed[SEAL_PREFIX.size:]),
                                      self._aad(typ, nh, dst, origin))
        except InvalidTag:
            return None


class ReplayWindow:
    """Per-sender sliding window over 32-bit sequence numbers (bounded number of senders)."""

    def __init__(self, max_senders: int = 1024) -> None:
        self.max_senders = max_senders
        self._state: dict[int, list[int]] = {}  # sender -> [highest, bitmap]

    def accept(self, sender: int, seq: int) -> bool:
        st = self._state.get(sender)
        if st is None:
            if len(self._state) >= self.max_senders:
                self._state.pop(next(iter(self._state)))
            self._state[sender] = [seq, 1]
            return True
        top, bits = st
        if seq > top:
            shift = seq - top
            st[1] = ((bits << shift) | 1) & ((1 << WINDOW) - 1) if shift < WINDOW else 1
            st[0] = seq
            return True
        off = top - seq
        if off >= WINDOW or bits >> off & 1:
            return False
        st[1] = bits | (1 << off)
        return True

    def forget(self, sender: int) -> None:
        self._state.pop(sender, None)
