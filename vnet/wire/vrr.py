"""VRR wire format (our own; see docs/vrr-wire.md).

An Ethernet II frame with Ethertype 0x886F carries one VRR message:

    0        4     5    6     7     8        10       12       16      22       28       34   36
    | demux  | ver | type| flags| rsv | length | nexthdr |  seq   |  dst   | origin | hop src| hl |
    |  body (by type, 16-byte fixed part + 8-byte entries) | payload | [16-byte hop MAC] |

All fields are in network byte order; every fixed part is a multiple of 4 bytes.
Virtual addresses are 48-bit integers written like MAC addresses. `length`
counts the message from the demux code to the end of the payload (Ethernet
padding and the MAC trailer are outside it).

Parsers return plain tuples/ints (no per-frame objects) and raise `WireError`.
"""

from __future__ import annotations

import struct

from vnet.wire.errors import WireError

ETHERTYPE_VRR = 0x886F
DEMUX = 0x56525230  # "VRR0": our demux code, checked before anything else
VERSION = 2  # 2: the hop limit is 16 bits (vset-paths at N = 10,000 exceed 255 hops)
ETH_HLEN = 14
HDR_LEN = 36
OFF = ETH_HLEN + HDR_LEN  # where the body starts in a frame
MAC_LEN = 16  # truncated HMAC-SHA256 trailer
ADDR_BITS = 48
ADDR_SPACE = 1 << ADDR_BITS
ADDR_MASK = ADDR_SPACE - 1
MAX_LENGTH = 9000  # the largest message we accept (jumbo frames)

# message types
DATA = 1
HELLO = 2
SETUP_REQ = 3
SETUP = 4
SETUP_FAIL = 5
TEARDOWN = 6
DHT = 7
MERGE = 8  # travels hop by hop towards a representative; each hop re-joins via the next
TYPE_NAMES = {DATA: "data", HELLO: "hello", SETUP_REQ: "setup_req", SETUP: "setup",
              SETUP_FAIL: "setup_fail", TEARDOWN: "teardown", DHT: "dht", MERGE: "merge"}

# header flags
F_ACTIVE = 0x01  # hello: sender has joined the ring
F_REP = 0x02  # hello: carries a representative
F_AUTH = 0x04  # a 16-byte hop MAC follows the message
F_ENC = 0x08  # data/dht payload is encrypted end to end
F_VSET = 0x10  # teardown: the vset list is present (voluntary teardown)
F_CAND = 0x20  # hello of an inactive node: the rep field is the smallest id heard (boot leader)

# hello neighbour states
NS_LINKED = 1
NS_PENDING = 2

# DHT operations
DHT_PUT = 1
DHT_GET = 2
DHT_REPLY = 3
DHT_STORE = 4  # hand-over of a key to its new owner
DHT_REPLICA = 5
DHT_REMOVE = 6
NH_DHT = 0x0000  # next header value for DHT messages
NH_REPCHECK = 0x0001  # data routed to the representative's id to check the ring is one ring

HDR = struct.Struct("!IBBBBHHIHIHIHIH")
ETH = struct.Struct("!6s6sH")
FRAME_HDR = struct.Struct("!6s6sHIBBBBHHIHIHIHIH")  # ETH + HDR in one pack (hot path)
HELLO_BODY = struct.Struct("!IHIHI")  # hello_seq, rep_id(hi,lo), n_neigh, rep_seq
ENTRY = struct.Struct("!HIBB")  # neighbour id (hi,lo), state, quality
PATH_BODY = struct.Struct("!HIHII")  # addr(hi,lo), n_vset, pid, aux
VENTRY = struct.Struct("!HIH")  # vset id (hi,lo), reserved
DHT_BODY = struct.Struct("!BBHIHIH")  # op, status, vlen, req_id, key(hi,lo), reserved
NO_VSET = 0xFFFF
BROADCAST = b"\xff" * 6


def addr_to_str(a: int) -> str:
    return ":".join(f"{b:02x}" for b in a.to_bytes(6, "big"))


def addr_from_str(text: str) -> int:
    parts = text.replace("-", ":").split(":")
    if len(parts) != 6 or not all(1 <= len(p) <= 2 for p in parts):
        raise WireError(f"not a virtual address: {text!r} (six hex pairs, e.g. 02:00:00:00:00:01)")
    try:
        return int("".join(p.zfill(2) for p in parts), 16)
    except ValueError:
        raise WireError(f"not a virtual address: {text!r} (six hex pairs)") from None


def addr_to_mac(a: int) -> bytes:
    return a.to_bytes(6, "big")


def mac_to_addr(mac: bytes) -> int:
    return int.from_bytes(mac, "big")


def parse(frame: bytes) -> tuple[int, int, int, int, int, int, int, int, int]:
    """Check and parse the VRR header of an Ethernet frame.

    Returns (type, flags, hop_limit, length, next_header, seq, dst, origin, hop_src).
    """
    n = len(frame)
    if n < OFF:
        raise WireError(f"VRR frame of {n} bytes is shorter than its {OFF}-byte headers")
    (demux, ver, typ, flags, _r, length, nh, seq, dh, dl, oh, ol, sh, sl, hl) = HDR.unpack_from(
        frame, ETH_HLEN)
    if demux != DEMUX:
        raise WireError(f"bad VRR demux code 0x{demux:08x}")
    if ver != VERSION:
        raise WireError(f"unsupported VRR version {ver}")
    if length < HDR_LEN or length > MAX_LENGTH:
        raise WireError(f"VRR length {length} out of range {HDR_LEN}..{MAX_LENGTH}")
    need = ETH_HLEN + length + (MAC_LEN if flags & F_AUTH else 0)
    if n < need:
        raise WireError(f"VRR frame truncated: {n} bytes, header says {need}")
    if typ not in TYPE_NAMES:
        raise WireError(f"unknown VRR message type {typ}")
    return typ, flags, hl, length, nh, seq, (dh << 32) | dl, (oh << 32) | ol, (sh << 32) | sl


def build(eth_dst: bytes, eth_src: bytes, typ: int, flags: int, hop_limit: int, nh: int, seq: int,
          dst: int, origin: int, hop_src: int, body: bytes = b"") -> bytes:
    """A whole frame: Ethernet header, VRR header and body (body includes any payload)."""
    length = HDR_LEN + len(body)
    if length > MAX_LENGTH:
        raise WireError(f"VRR message of {length} bytes exceeds {MAX_LENGTH}")
    return FRAME_HDR.pack(eth_dst, eth_src, ETHERTYPE_VRR, DEMUX, VERSION, typ, flags, 0,
                          length, nh, seq & 0xFFFFFFFF, dst >> 32, dst & 0xFFFFFFFF, origin >> 32,
                          origin & 0xFFFFFFFF, hop_src >> 32, hop_src & 0xFFFFFFFF,
                          hop_limit) + body


# ---- hello ----

def hello_body(hello_seq: int, rep: int, rep_seq: int, entries: list[tuple[int, int, int]]) -> bytes:
    """entries: (neighbour id, NS_* state, quality 0..255)."""
    parts = [HELLO_BODY.pack(hello_seq & 0xFFFFFFFF, rep >> 32, rep & 0xFFFFFFFF, len(entries),
                             rep_seq & 0xFFFFFFFF)]
    for a, st, q in entries:
        parts.append(ENTRY.pack(a >> 32, a & 0xFFFFFFFF, st, q))
    return b"".join(parts)


def parse_hello(frame: bytes, length: int) -> tuple[int, int, int, int]:
    """Returns (hello_seq, rep, rep_seq, n_entries); entries start at OFF + 16."""
    if length < HDR_LEN + HELLO_BODY.size:
        raise WireError("hello body truncated")
    hseq, rh, rl, n, rseq = HELLO_BODY.unpack_from(frame, OFF)
    if HDR_LEN + HELLO_BODY.size + n * ENTRY.size != length:
        raise WireError(f"hello with {n} entries does not fit length {length}")
    return hseq, (rh << 32) | rl, rseq, n


def hello_state_of(frame: bytes, n: int, me6: bytes) -> int:
    """The state the hello's sender holds for `me6` (6-byte id): NS_* or 0 when missing."""
    start = OFF + HELLO_BODY.size
    end = start + n * ENTRY.size
    i = frame.find(me6, start, end)
    while i >= 0:
        if (i - start) % ENTRY.size == 0:
            return frame[i + 6]
        i = frame.find(me6, i + 1, end)
    return 0


def hello_entries(frame: bytes, n: int) -> list[tuple[int, int, int]]:
    start = OFF + HELLO_BODY.size
    return [((h << 32) | lo, st, q)
            for h, lo, st, q in ENTRY.iter_unpack(frame[start:start + n * ENTRY.size])]


# ---- setup_req / setup / setup_fail / teardown ----

def path_body(addr: int, pid: int, vset: list[int] | None, aux: int = 0) -> bytes:
    """addr: the proxy (setup family) or endpoint A (teardown); vset None = absent."""
    n = NO_VSET if vset is None else len(vset)
    head = PATH_BODY.pack(addr >> 32, addr & 0xFFFFFFFF, n, pid & 0xFFFFFFFF, aux)
    if not vset:
        return head
    return head + b"".join(VENTRY.pack(v >> 32, v & 0xFFFFFFFF, 0) for v in vset)


def parse_path_head(frame: bytes, length: int) -> tuple[int, int, int]:
    """Check a path message's length; returns (addr, pid, n_vset or NO_VSET), list unparsed."""
    if length < HDR_LEN + PATH_BODY.size:
        raise WireError("path message body truncated")
    ah, al, n, pid, _aux = PATH_BODY.unpack_from(frame, OFF)
    if n == NO_VSET:
        if length != HDR_LEN + PATH_BODY.size:
            raise WireError("path message without vset has trailing bytes")
    elif HDR_LEN + PATH_BODY.size + n * VENTRY.size != length:
        raise WireError(f"path message with {n} vset entries does not fit length {length}")
    return (ah << 32) | al, pid, n


def path_vset(frame: bytes, n: int) -> list[int] | None:
    """The vset list of a path message checked by parse_path_head (None when absent)."""
    if n == NO_VSET:
        return None
    start = OFF + PATH_BODY.size
    return [(h << 32) | lo for h, lo, _ in VENTRY.iter_unpack(frame[start:start + n * VENTRY.size])]


def parse_path(frame: bytes, length: int) -> tuple[int, int, list[int] | None]:
    """Returns (addr, pid, vset or None)."""
    addr, pid, n = parse_path_head(frame, length)
    return addr, pid, path_vset(frame, n)


# ---- DHT ----

def dht_body(op: int, status: int, req_id: int, key: int, value: bytes = b"") -> bytes:
    if len(value) > 0xFFFF:
        raise WireError("DHT value longer than 65535 bytes")
    return DHT_BODY.pack(op, status, len(value), req_id & 0xFFFFFFFF, key >> 32,
                         key & 0xFFFFFFFF, 0) + value


def parse_dht(body: bytes) -> tuple[int, int, int, int, bytes]:
    """Parse a DHT body (after decryption). Returns (op, status, req_id, key, value)."""
    if len(body) < DHT_BODY.size:
        raise WireError("DHT body truncated")
    op, status, vlen, req, kh, kl, _ = DHT_BODY.unpack_from(body, 0)
    if DHT_BODY.size + vlen != len(body):
        raise WireError(f"DHT value length {vlen} does not fit body of {len(body)} bytes")
    if not DHT_PUT <= op <= DHT_REMOVE:
        raise WireError(f"unknown DHT operation {op}")
    return op, status, req, (kh << 32) | kl, bytes(body[DHT_BODY.size:])


def describe(frame: bytes) -> dict[str, object]:
    """A readable summary (for tests, captures and the control socket)."""
    typ, flags, hl, length, nh, seq, dst, origin, hop = parse(frame)
    d: dict[str, object] = {"type": TYPE_NAMES[typ], "flags": flags, "hop_limit": hl,
                            "length": length, "next_header": nh, "seq": seq,
                            "dst": addr_to_str(dst), "origin": addr_to_str(origin),
                            "hop_src": addr_to_str(hop)}
    if typ == HELLO:
        hseq, rep, rseq, n = parse_hello(frame, length)
        d.update(hello_seq=hseq, rep=addr_to_str(rep) if flags & F_REP else None, rep_seq=rseq,
                 neighbours=[(addr_to_str(a), s, q) for a, s, q in hello_entries(frame, n)])
    elif typ in (SETUP_REQ, SETUP, SETUP_FAIL, TEARDOWN):
        a, pid, vset = parse_path(frame, length)
        d.update(addr=addr_to_str(a), pid=pid,
                 vset=None if vset is None else [addr_to_str(v) for v in vset])
    return d
