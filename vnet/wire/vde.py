"""The VDE control handshake: `struct request_v3` (client -> switch) and the
`struct sockaddr_un` reply (switch -> client).

The C structs travel raw, in the host's byte order (no htonl on either side),
so the formats use "=" (native order, standard sizes, no padding):

    request_v3: u32 magic 0xfeedface | u32 version 3 | i32 type (REQ | port << 8)
                | sockaddr_un (u16 family, char path[108]) | description (no NUL)
                -> 122 + len(description) bytes, at most 250
    reply:      sockaddr_un, exactly 110 bytes

`type & 0xff` is REQ_NEW_CONTROL (0, "any port or port N") or REQ_NEW_PORT0
(1, the management port 0); `type >> 8` is the requested port number (0 = any).
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass

from vnet.wire.errors import WireError

SWITCH_MAGIC = 0xFEEDFACE
VERSION = 3
REQ_NEW_CONTROL = 0
REQ_NEW_PORT0 = 1
PATH_MAX = 108  # sun_path
MAXDESCR = 128  # the client's buffer; at most 127 characters are sent

_HEAD = struct.Struct("=IIi")
_SUN = struct.Struct("=H108s")
HEAD_SIZE = _HEAD.size  # 12
SOCKADDR_SIZE = _SUN.size  # 110
REQUEST_MIN = HEAD_SIZE + SOCKADDR_SIZE  # 122: offset of the description
REQUEST_MAX = REQUEST_MIN + MAXDESCR  # 250 = sizeof(struct request_v3)
REPLY_SIZE = SOCKADDR_SIZE


@dataclass(frozen=True)
class Request:
    path: str  # the client's datagram socket
    port: int = 0  # 0 = any free port
    port0: bool = False  # REQ_NEW_PORT0: the management port
    description: str = ""

    @property
    def type(self) -> int:
        return (REQ_NEW_PORT0 if self.port0 else REQ_NEW_CONTROL) | (self.port << 8)


def _path_bytes(path: str) -> bytes:
    raw = path.encode()
    if not raw or len(raw) >= PATH_MAX or b"\0" in raw:
        raise WireError(f"socket path must be 1..{PATH_MAX - 1} bytes without NUL: {path!r}")
    return raw


def build_sockaddr(path: str) -> bytes:
    return _SUN.pack(socket.AF_UNIX, _path_bytes(path))


def parse_sockaddr(data: bytes) -> str:
    if len(data) < SOCKADDR_SIZE:
        raise WireError(f"sockaddr_un too short: {len(data)} bytes, need {SOCKADDR_SIZE}")
    family, raw = _SUN.unpack_from(data)
    if family != socket.AF_UNIX:
        raise WireError(f"sockaddr family {family} is not AF_UNIX ({socket.AF_UNIX})")
    path = raw.split(b"\0", 1)[0]
    if not path:
        raise WireError("sockaddr_un with an empty path")
    return path.decode("utf-8", "surrogateescape")


def build_request(req: Request) -> bytes:
    if not 0 <= req.port <= 0xFFFFFF:
        raise WireError(f"port {req.port} out of range 0..16777215")
    descr = req.description.encode()[: MAXDESCR - 1]
    return _HEAD.pack(SWITCH_MAGIC, VERSION, req.type) + build_sockaddr(req.path) + descr


def parse_request(data: bytes) -> Request:
    """Parse one request as read in a single recv; WireError says what is wrong."""
    n = len(data)
    if n < 8:
        raise WireError(f"short request: {n} bytes, need at least {REQUEST_MIN}")
    magic, version = struct.unpack_from("=II", data)
    if magic != SWITCH_MAGIC:
        raise WireError(f"bad magic 0x{magic:08x} (want 0x{SWITCH_MAGIC:08x}): not a VDE v3 client")
    if version != VERSION:
        raise WireError(f"request for a version {version} port: only version {VERSION} is supported")
    if n < REQUEST_MIN:
        raise WireError(f"short request: {n} bytes, need at least {REQUEST_MIN}")
    if n > REQUEST_MAX:
        raise WireError(f"request too long: {n} bytes, at most {REQUEST_MAX}")
    _, _, rtype = _HEAD.unpack_from(data)
    kind = rtype & 0xFF
    if kind not in (REQ_NEW_CONTROL, REQ_NEW_PORT0):
        raise WireError(f"unknown request type {kind}")
    port = (rtype >> 8) & 0xFFFFFF
    path = parse_sockaddr(data[HEAD_SIZE:REQUEST_MIN])
    descr = data[REQUEST_MIN:].split(b"\0", 1)[0].decode("utf-8", "replace")
    return Request(path, port, kind == REQ_NEW_PORT0, descr)
