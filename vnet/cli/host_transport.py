"""TCP and UDP test clients and servers for the `vnet host` control socket.

    tcp listen PORT [discard|echo|send BYTES]   serve: count, echo back, or send BYTES then close
    tcp connect ADDR PORT [BYTES]               send BYTES (default 1 MiB) of the test pattern,
                                                half-close, read until the peer closes
    tcp stat                                    layer counters, connections, served transfers
    tcp unlisten PORT
    udp listen PORT [echo]                      print (count) datagrams, optionally echo them
    udp send ADDR PORT TEXT [--wait]            one datagram; --wait: return the first reply
    udp stat

The test pattern is bytes 0..250 repeated (251 is prime, so a shifted or dropped
chunk never lines up by chance); peers check what they receive against it.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import deque
from typing import Any

from vnet.control.server import CommandError, Console
from vnet.stack.sockets import tcp_of, udp_of

_PERIOD = bytes(range(251))
_CHUNK = _PERIOD * 261  # 65,511 bytes: whole periods, so chunks chain seamlessly


def pattern(n: int, offset: int = 0) -> bytes:
    """n bytes of the test pattern starting at stream offset `offset`."""
    start = offset % 251
    reps = (start + n) // 251 + 1
    return (_PERIOD * reps)[start:start + n]


class PatternCheck:
    """Checks a received stream against the pattern without keeping it."""

    __slots__ = ("n", "ok")

    def __init__(self) -> None:
        self.n = 0
        self.ok = True

    def feed(self, data: bytes) -> None:
        if self.ok and data != pattern(len(data), self.n):
            self.ok = False
        self.n += len(data)


def _mbit(nbytes: int, seconds: float) -> float:
    return round(nbytes * 8 / seconds / 1e6, 2) if seconds > 0 else 0.0


class TransportCommands:
    def __init__(self, host: Any, rt: Any) -> None:
        self.host = host
        self.rt = rt
        self.served: deque[dict[str, Any]] = deque(maxlen=50)
        self.listeners: dict[int, Any] = {}
        self.udp_socks: dict[int, Any] = {}
        self.udp_log: deque[dict[str, Any]] = deque(maxlen=50)

    # ---- tcp ---------------------------------------------------------------------------
    def tcp(self, words: list[str]) -> Any:
        if not words:
            raise CommandError("syntax: tcp listen|connect|stat|unlisten ...")
        sub, args = words[0], words[1:]
        if sub == "listen":
            return self._listen(args)
        if sub == "connect":
            return self._connect(args)
        if sub == "unlisten":
            lst = self.listeners.pop(int(args[0]), None)
            if lst is None:
                raise CommandError(f"not listening on TCP port {args[0]}")
            lst.close()
            return None
        if sub == "stat":
            t = tcp_of(self.host)
            return {"layer": t.stats(),
                    "connections": [c.info() for c in list(t.conns.values())[:50]],
                    "served": list(self.served)}
        raise CommandError(f"tcp {sub}: unknown; use listen, connect, stat or unlisten")

    def _listen(self, args: list[str]) -> str:
        if not args:
            raise CommandError("syntax: tcp listen PORT [discard|echo|send BYTES]")
        port = int(args[0])
        mode = args[1] if len(args) > 1 else "discard"
        if mode not in ("discard", "echo", "send"):
            raise CommandError(f"tcp listen: mode {mode!r}: use discard, echo or send BYTES")
        nsend = int(args[2]) if mode == "send" and len(args) > 2 else 1 << 20
        tcp = tcp_of(self.host)
        rt = self.rt

        def accept(conn: Any) -> None:
            rec: dict[str, Any] = {"peer": f"{conn.remote}:{conn.rport}", "mode": mode,
                                   "received": 0, "start": rt.now()}
            check = PatternCheck()

            def data(d: bytes) -> None:
                rec["received"] += len(d)
                check.feed(d)
                if mode == "echo":
                    conn.send(d)

            def eof() -> None:
                secs = rt.now() - rec["start"]
                rec.update(seconds=round(secs, 4), goodput_mbit=_mbit(rec["received"], secs),
                           pattern_ok=check.ok)
                conn.close()

            def closed(err: int | None) -> None:
                rec.pop("start", None)
                rec["error"] = err
                self.served.append(rec)

            conn.on_data = data
            conn.on_eof = eof
            conn.on_close = closed
            if mode == "send":
                _send_pattern(conn, nsend)

        try:
            self.listeners[port] = tcp.listen(port, accept)
        except (OSError, ValueError) as e:
            raise CommandError(f"tcp listen: {e}") from None
        return f"listening on TCP port {port} ({mode})"

    async def _connect(self, args: list[str]) -> dict[str, Any]:
        if len(args) < 2:
            raise CommandError("syntax: tcp connect ADDR PORT [BYTES]")
        addr = ipaddress.ip_address(args[0])
        port = int(args[1])
        nbytes = int(args[2]) if len(args) > 2 else 1 << 20
        rt = self.rt
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        rec: dict[str, Any] = {"sent": nbytes, "received": 0}
        check = PatternCheck()
        try:
            conn = tcp_of(self.host).connect(addr, port)
        except OSError as e:
            raise CommandError(f"tcp connect: {e.strerror or e}") from None
        t: dict[str, float] = {}

        def established() -> None:
            t["start"] = rt.now()
            _send_pattern(conn, nbytes)

        def data(d: bytes) -> None:
            rec["received"] += len(d)
            check.feed(d)

        def eof() -> None:
            t["eof"] = rt.now()
            conn.close()

        def closed(err: int | None) -> None:
            if not done.done():
                done.set_result(err)

        conn.on_established = established
        conn.on_data = data
        conn.on_eof = eof
        conn.on_close = closed
        try:
            err = await asyncio.wait_for(done, 600)
        except TimeoutError:
            conn.abort()
            raise CommandError("tcp connect: no end within 600 s") from None
        if "start" not in t:
            return {"ok": False, "error": f"connect failed: errno {err}"}
        secs = t.get("eof", rt.now()) - t["start"]
        acked = conn.tx_bytes  # includes retransmissions; report the application view
        rec.update(ok=err is None, seconds=round(secs, 4),
                   goodput_mbit=_mbit(nbytes, secs),
                   received_pattern_ok=check.ok if rec["received"] else None,
                   retransmits=conn.retransmits, tx_bytes_on_wire=acked,
                   error=err)
        return rec

    # ---- udp ---------------------------------------------------------------------------
    def udp(self, words: list[str]) -> Any:
        if not words:
            raise CommandError("syntax: udp listen|send|stat ...")
        sub, args = words[0], words[1:]
        udp = udp_of(self.host)
        if sub == "listen":
            port = int(args[0])
            echo = len(args) > 1 and args[1] == "echo"

            def got(d: bytes, a: Any, p: int, meta: Any) -> None:
                self.udp_log.append({"from": f"{a}:{p}", "to_port": port, "len": len(d),
                                     "text": d[:64].decode("utf-8", "replace")})
                if echo:
                    sock.sendto(d, a, p)

            try:
                sock = udp.bind(port, got)
            except (OSError, ValueError) as e:
                raise CommandError(f"udp listen: {e}") from None
            self.udp_socks[port] = sock
            return f"listening on UDP port {port}{' (echo)' if echo else ''}"
        if sub == "send":
            if len(args) < 3:
                raise CommandError("syntax: udp send ADDR PORT TEXT [--wait]")
            wait = "--wait" in args
            args = [a for a in args if a != "--wait"]
            return self._udp_send(ipaddress.ip_address(args[0]), int(args[1]),
                                  " ".join(args[2:]).encode(), wait)
        if sub == "stat":
            return {"layer": udp.stats(), "received": list(self.udp_log)}
        raise CommandError(f"udp {sub}: unknown; use listen, send or stat")

    async def _udp_send(self, addr: Any, port: int, data: bytes, wait: bool) -> Any:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future = loop.create_future()

        def reply(d: bytes, a: Any, p: int, meta: Any) -> None:
            if not fut.done():
                fut.set_result({"from": f"{a}:{p}", "text": d.decode("utf-8", "replace")})

        sock = udp_of(self.host).bind(0, reply)
        try:
            if not sock.sendto(data, addr, port):
                return {"ok": False, "error": "no route or no source address"}
            if not wait:
                return {"ok": True, "sent": len(data), "from_port": sock.port}
            try:
                return {"ok": True, "reply": await asyncio.wait_for(fut, 2.0)}
            except TimeoutError:
                return {"ok": False, "error": "no reply within 2 s"}
        finally:
            sock.close()


def _send_pattern(conn: Any, n: int) -> None:
    """Send n pattern bytes, then FIN; refill from `on_writable` so the buffer stays bounded."""
    state = {"off": 0}

    def pump() -> None:
        off = state["off"]
        while off < n and conn.writable:
            k = min(len(_CHUNK), n - off)
            conn.send(_CHUNK[:k] if k < len(_CHUNK) else _CHUNK)
            off += k
        state["off"] = off
        if off >= n:
            conn.on_writable = lambda: None
            conn.shutdown()

    conn.on_writable = pump
    pump()


def register(console: Console, host: Any, rt: Any) -> TransportCommands:
    cmds = TransportCommands(host, rt)
    console.add("tcp", cmds.tcp, "listen PORT [discard|echo|send BYTES] | connect ADDR PORT "
                "[BYTES] | stat | unlisten PORT", "TCP test server and client (goodput)")
    console.add("udp", cmds.udp, "listen PORT [echo] | send ADDR PORT TEXT [--wait] | stat",
                "UDP test server and client")
    return cmds
