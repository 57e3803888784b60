"""Attachment URLs in the style of vdeplug4: `vde:///dir[3]`, `tap://tap0`, `tcp://host:port`, ...

Each scheme lives in its own module exposing

    async def open_url(url: AttachUrl, port: Port, rt: AsyncioRuntime) -> Attachment

which joins `port` to the OS resource: frames the OS delivers go to
`port.receive`, and `port.transmit` is set to send to the OS.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import parse_qsl

from vnet.link.port import Port
from vnet.runtime.realtime import AsyncioRuntime

SCHEMES: dict[str, str] = {
    "vde": "vnet.phy.vde_client",
    "tap": "vnet.phy.tap",
    "packet": "vnet.phy.packet",
    "tcp": "vnet.phy.stream",
    "tcp-listen": "vnet.phy.stream",
    "stdio": "vnet.phy.stream",
    "cmd": "vnet.phy.stream",
    "ssh": "vnet.phy.stream",
    "udp": "vnet.phy.udp",
    "vxlan": "vnet.phy.vxlan",
}


class UrlError(ValueError):
    """A URL that cannot be used; the message says how to write it."""


class Attachment(Protocol):
    port: Port

    def close(self) -> None: ...


@dataclass
class AttachUrl:
    """A parsed attachment URL. `bracket` holds vdeplug4's `[N]` or `[opt=v/...]` suffix."""

    scheme: str
    target: str  # everything after "scheme://" without the bracket and the query
    options: dict[str, str] = field(default_factory=dict)
    bracket: str = ""
    raw: str = ""


_BRACKET = re.compile(r"\[([^\]]*)\]$")


def parse_url(text: str) -> AttachUrl:
    raw = text
    if text == "stdio" or text == "-":
        return AttachUrl("stdio", "", raw=raw)
    if "://" not in text:
        if text.startswith("/") or text.startswith("."):
            text = "vde://" + text  # a bare path is a VDE switch directory, as in vde_plug
        else:
            raise UrlError(f"not an attachment URL: {raw!r} (e.g. vde:///tmp/sw, tap://tap0, "
                           f"tcp://host:port, udp://lport:host:port, vxlan://..., stdio)")
    scheme, _, rest = text.partition("://")
    scheme = scheme.lower()
    if scheme not in SCHEMES:
        raise UrlError(f"unknown URL scheme {scheme!r} in {raw!r}: known are {', '.join(sorted(SCHEMES))}")
    options: dict[str, str] = {}
    if "?" in rest and scheme not in ("cmd", "ssh"):
        rest, _, query = rest.partition("?")
        options = dict(parse_qsl(query, keep_blank_values=True))
    bracket = ""
    m = _BRACKET.search(rest)
    if m and scheme not in ("cmd", "ssh"):
        bracket = m.group(1)
        rest = rest[: m.start()]
    return AttachUrl(scheme, rest, options, bracket, raw)


async def attach(url: str | AttachUrl, port: Port, rt: AsyncioRuntime) -> Attachment:
    u = parse_url(url) if isinstance(url, str) else url
    module = importlib.import_module(SCHEMES[u.scheme])
    return await module.open_url(u, port, rt)
