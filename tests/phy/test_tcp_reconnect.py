"""`tcp://HOST:PORT?reconnect=MAX`: a cable that redials when its connection is refused or lost.

The far end is vnet's own `tcp-listen://` on a switch in the same loop, dropped and
brought back on the same port number."""

from __future__ import annotations

import socket

import pytest

from tests.phy.test_stream import A, B, Endpoint, frame, until
from vnet.link.port import Port
from vnet.link.switch import Switch
from vnet.phy.url import UrlError, attach
from vnet.runtime.realtime import AsyncioRuntime, run


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_reconnect_waits_for_the_listener_and_survives_its_restart():
    async def main(rt: AsyncioRuntime) -> None:
        p = free_port()
        s1, s2 = Switch(rt), Switch(rt)
        e1, e2 = Endpoint(s1), Endpoint(s2)
        cable = s2.add_port()
        dialer = await attach(f"tcp://127.0.0.1:{p}?reconnect=0.2", cable, rt)
        e2.port.send(frame(A, B, 60))  # nobody listens yet: dropped, counted
        await until(lambda: dialer.failures >= 2)
        assert cable.tx_dropped >= 1 and dialer.conn is None
        lis_port = s1.add_port()
        lis = await attach(f"tcp-listen://127.0.0.1:{p}", lis_port, rt)
        await until(lambda: dialer.conn is not None)
        e2.port.send(frame(A, B, 100, 1))
        await until(lambda: any(len(f) == 100 for f in e1.got))
        # the far end goes away and comes back on the same port
        lis.close()
        await until(lambda: dialer.conn is None)
        assert not dialer.closed.done()
        lis = await attach(f"tcp-listen://127.0.0.1:{p}", lis_port, rt)
        await until(lambda: dialer.conn is not None)
        e2.port.send(frame(A, B, 200, 2))
        await until(lambda: any(len(f) == 200 for f in e1.got))
        e1.port.send(frame(B, A, 300, 3))  # and the other way
        await until(lambda: any(len(f) == 300 for f in e2.got))
        assert dialer.connects == 2
        dialer.close()
        await dialer.wait_closed()
        lis.close()

    run(main)


def test_bad_reconnect_value_is_one_clear_error():
    async def main(rt: AsyncioRuntime) -> None:
        for bad in ("x", "0", "99999"):
            with pytest.raises(UrlError, match="reconnect is the longest wait"):
                await attach(f"tcp://127.0.0.1:9?reconnect={bad}", Port(), rt)

    run(main)
