"""`vnet plug [URL [URL2]]`: like vde_plug.

With one URL (default: the default VDE switch, found as vde_plug finds it), the
network at URL is joined to stdin/stdout with the 2-byte length stream framing,
so `dpipe vde_plug = vnet plug tcp://...`-style cables work. With two URLs the
two networks are joined directly. Exits when either side closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from vnet.link.port import Port
from vnet.phy.url import UrlError, attach, parse_url
from vnet.runtime.realtime import AsyncioRuntime
from vnet.runtime.realtime import run as run_loop


def default_url() -> str:
    """The default switch, looked up in vdeplug4's order."""
    home = os.path.expanduser("~")
    for rel in (".vdeplug/default", ".vde2/default.switch"):
        path = os.path.join(home, rel)
        if os.path.isdir(path):
            return "vde://" + os.path.realpath(path)
        if os.path.isfile(path):
            try:
                with open(path) as f:
                    line = f.readline().strip()
            except OSError:
                continue
            if line:
                return line
    for d in ("/var/run/vde.ctl", "/tmp/vde.ctl"):
        if os.path.exists(d):
            return "vde://" + d
    return "vde://" + ("/var/run/vde.ctl" if os.geteuid() == 0 else "/tmp/vde.ctl")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("urls", nargs="*", metavar="URL",
                   help="one URL: join it to stdin/stdout; two URLs: join them "
                        "(default: the default VDE switch). Schemes: vde://DIR, tap://IF, "
                        "packet://IF, tcp://HOST:PORT, tcp-listen://[ADDR]:PORT, udp://..., "
                        "vxlan://..., cmd://COMMAND, ssh://HOST/URL, stdio")


def join(a: Port, b: Port) -> None:
    """Frames from the network on `a` go out to `b`'s network, and back."""
    a.receive = b.send
    b.receive = a.send


async def plug(rt: AsyncioRuntime, url1: str, url2: str) -> None:
    u1, u2 = parse_url(url1), parse_url(url2)
    a, b = Port(url1), Port(url2)
    join(a, b)
    att1 = await attach(u1, a, rt)
    try:
        att2 = await attach(u2, b, rt)
    except BaseException:
        att1.close()
        raise
    stop = rt.loop.create_future()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        try:
            rt.loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
        except (ValueError, RuntimeError):  # not the main thread
            pass
    waits = [stop]
    for att in (att1, att2):
        w = getattr(att, "closed", None)
        if isinstance(w, asyncio.Future):
            waits.append(w)
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        att2.close()
        att1.close()


def run(args: argparse.Namespace) -> int:
    urls = list(args.urls)
    if len(urls) > 2:
        print("vnet plug: give at most two URLs", file=sys.stderr)
        return 2
    if not urls:
        urls = [default_url()]
    if len(urls) == 1:
        urls.append("stdio")
    try:
        run_loop(lambda rt: plug(rt, urls[0], urls[1]))
    except UrlError as e:
        print(f"vnet plug: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        print(f"vnet plug: this URL scheme is not available yet ({e.name} is missing)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vnet plug: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0
