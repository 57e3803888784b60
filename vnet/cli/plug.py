"""`vnet plug [URL [URL2]]`: like vde_plug.

With one URL (default: the default VDE switch, found as vde_plug finds it), the
network at URL is joined to stdin/stdout with the 2-byte length stream framing,
so `dpipe vde_plug = vnet plug tcp://...`-style cables work. With two URLs the
two networks are joined directly; `URL = COMMAND ARGS` joins URL to a command's
stdin/stdout (as `cmd://`). vde_plug's -D/-g/-m/-G/-M/-p mean the same here.
Exits when either side closes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import signal
import sys

from vnet.link.port import Port
from vnet.phy.url import AttachUrl, UrlError, attach, parse_url
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
    p.add_argument("-D", "--descr", default=None,
                   help="description of this connection, shown by the switch's port/print")
    p.add_argument("-g", "--group", default=None, help="group of the data socket (vde:// URL)")
    p.add_argument("-G", "--group2", default=None, help="like -g, for the second URL")
    p.add_argument("-m", "--mode", default=None, help="octal mode of the data socket (vde://)")
    p.add_argument("-M", "--mode2", default=None, help="like -m, for the second URL")
    p.add_argument("-p", "--pidfile", default=None, help="write our process id to this file")
    p.add_argument("urls", nargs=argparse.REMAINDER, metavar="URL",
                   help="one URL: join it to stdin/stdout; two URLs: join them; "
                        "`URL = COMMAND ARGS...`: join URL to a command's stdin/stdout "
                        "(default URL: the default VDE switch). Schemes: vde://DIR, tap://IF, "
                        "packet://IF, tcp://HOST:PORT, tcp-listen://[ADDR]:PORT, udp://..., "
                        "vxlan://..., cmd://COMMAND, ssh://HOST/URL, stdio")


def join(a: Port, b: Port) -> None:
    """Frames from the network on `a` go out to `b`'s network, and back."""
    a.receive = b.send
    b.receive = a.send


def with_vde_options(url: str, descr: str | None, group: str | None,
                     mode: str | None) -> AttachUrl:
    """vde_plug's -D/-g/-m become options of a vde:// URL (the URL's own options win)."""
    u = parse_url(url)
    if u.scheme == "vde":
        for key, value in (("descr", descr), ("group", group), ("mode", mode)):
            if value is not None:
                u.options.setdefault(key, value)
    return u


async def plug(rt: AsyncioRuntime, url1: str | AttachUrl, url2: str | AttachUrl) -> None:
    u1 = parse_url(url1) if isinstance(url1, str) else url1
    u2 = parse_url(url2) if isinstance(url2, str) else url2
    url1, url2 = u1.raw, u2.raw
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
    if "=" in urls:  # vde_plug's `[URL] = COMMAND ARGS...`
        i = urls.index("=")
        if i == len(urls) - 1:
            print("vnet plug: give a command after '='", file=sys.stderr)
            return 2
        urls = urls[:i] + ["cmd://" + shlex.join(urls[i + 1:])]
        if i == 0:
            urls.insert(0, default_url())
    if len(urls) > 2:
        print("vnet plug: give at most two URLs (quote a URL that contains spaces)",
              file=sys.stderr)
        return 2
    if not urls or urls[0] == "":
        urls[:1] = [default_url()]
    if len(urls) == 1:
        urls.append("stdio")
    descr = args.descr if args.descr is not None else "vnet plug:"
    try:
        u1 = with_vde_options(urls[0], descr, args.group, args.mode)
        u2 = with_vde_options(urls[1], descr, args.group2, args.mode2)
        if args.pidfile:
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        run_loop(lambda rt: plug(rt, u1, u2))
    except UrlError as e:
        print(f"vnet plug: {e}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as e:
        print(f"vnet plug: this URL scheme is not available yet ({e.name} is missing)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"vnet plug: {e.strerror or e}"
              + (f": {e.filename}" if getattr(e, "filename", None) else ""), file=sys.stderr)
        return 1
    finally:
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0
