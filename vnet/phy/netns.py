"""Make kernel objects (TAPs, sockets) inside a named network namespace.

A socket or TAP keeps the namespace it was created in, so a short-lived thread
enters the namespace (setns only affects the calling thread), creates the object
and hands it back; the rest of the process stays where it was.
"""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Callable
from typing import TypeVar

from vnet.phy.url import UrlError

T = TypeVar("T")
CLONE_NEWNET = 0x40000000


class NetnsError(UrlError):
    """A namespace that cannot be entered; the message says why."""


def netns_path(netns: str) -> str:
    return netns if "/" in netns else f"/run/netns/{netns}"


def in_netns(netns: str | None, fn: Callable[[], T]) -> T:
    """`fn()` run inside network namespace `netns` (a name from `ip netns` or a path)."""
    if not netns:
        return fn()
    try:
        nsfd = os.open(netns_path(netns), os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise NetnsError(f"network namespace {netns!r}: {e.strerror} "
                         f"(create it with `ip netns add {netns}`)") from None
    out: list[object] = []

    def worker() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(nsfd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise NetnsError(f"cannot enter network namespace {netns!r}: "
                                 f"{os.strerror(err)} (needs root)")
            out.append(fn())
        except BaseException as e:  # handed back to the caller's thread
            out.append(e)

    try:
        t = threading.Thread(target=worker, name=f"netns-{netns}")
        t.start()
        t.join()
    finally:
        os.close(nsfd)
    r = out[0]
    if isinstance(r, BaseException):
        raise r
    return r  # type: ignore[return-value]
