"""`vnet plug [URL [URL2]]`: like vde_plug.

With one URL (default: the default VDE switch, found as vde_plug finds it), the
network at URL is joined to stdin/stdout with the 2-byte length stream framing,
so `dpipe vde_plug = vnet plug tcp://...`-style cables work. With two URLs the
two networks are joined directly; `URL = COMMAND ARGS` joins URL to a command's
stdin/stdout (as `cmd://`). vde_plug's -D/-g/-m/-G/-M/-p/-d/-l/-L mean the same
here: -d runs in the background (two URLs only), -l logs START/STOP to syslog, -L
also logs each new IP address (with its MAC) that the second URL's side uses.
Exits when either side closes.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import pwd
import shlex
import signal
import sys
from collections.abc import Callable

from vnet.cli.daemon import Verdict, daemonize, to_syslog
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
    p.add_argument("-d", "--daemon", action="store_true",
                   help="run in the background (needs two URLs: a daemon has no stdio)")
    p.add_argument("-l", "--log", action="store_true",
                   help="log START and STOP to syslog (stderr when there is none)")
    p.add_argument("-L", "--iplog", action="store_true",
                   help="-l, plus each new IP address (and MAC) the second URL's side uses")
    p.add_argument("urls", nargs=argparse.REMAINDER, metavar="URL",
                   help="one URL: join it to stdin/stdout; two URLs: join them; "
                        "`URL = COMMAND ARGS...`: join URL to a command's stdin/stdout "
                        "(default URL: the default VDE switch). Schemes: vde://DIR, tap://IF, "
                        "packet://IF, tcp://HOST:PORT, tcp-listen://[ADDR]:PORT, udp://..., "
                        "vxlan://..., cmd://COMMAND, ssh://HOST/URL, stdio")


MAX_IPLOG = 1024  # (IP, MAC) pairs remembered for -L; past that, new ones are not logged


class IpLog:
    """-L: log the first frame from each (source IP, source MAC) pair, ARP included."""

    def __init__(self, log: logging.Logger, label: str) -> None:
        self.log = log
        self.label = label
        self.seen: set[tuple[bytes, bytes]] = set()
        self.full = False

    def __call__(self, frame: bytes) -> None:
        off = 12
        if frame[12:14] == b"\x81\x00":
            off = 16
        et = frame[off:off + 2]
        if et == b"\x08\x00" and len(frame) >= off + 22:
            ip = frame[off + 14:off + 18]
        elif et == b"\x86\xdd" and len(frame) >= off + 42:
            ip = frame[off + 10:off + 26]
        elif et == b"\x08\x06" and len(frame) >= off + 18:
            ip = frame[off + 16:off + 20]
        else:
            return
        key = (ip, frame[6:12])
        if key in self.seen or not any(ip):
            return
        if len(self.seen) >= MAX_IPLOG:
            if not self.full:
                self.full = True
                self.log.info("IP log full (%d addresses): no more are logged", MAX_IPLOG)
            return
        self.seen.add(key)
        self.log.info("%s: IP %s MAC %s", self.label, ipaddress.ip_address(ip),
                      frame[6:12].hex(":"))


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


async def plug(rt: AsyncioRuntime, url1: str | AttachUrl, url2: str | AttachUrl,
               ready: Callable[[], None] | None = None,
               sniff: Callable[[bytes], None] | None = None) -> None:
    """Join the two URLs until either closes or a signal comes; `ready` is called once
    both are attached, `sniff` sees every frame from url2's side."""
    u1 = parse_url(url1) if isinstance(url1, str) else url1
    u2 = parse_url(url2) if isinstance(url2, str) else url2
    url1, url2 = u1.raw, u2.raw
    a, b = Port(url1), Port(url2)
    join(a, b)
    if sniff is not None:
        send_a = a.send

        def from_b(frame: bytes) -> None:
            sniff(frame)
            send_a(frame)

        b.receive = from_b
    att1 = await attach(u1, a, rt)
    try:
        att2 = await attach(u2, b, rt)
    except BaseException:
        att1.close()
        raise
    if ready is not None:
        ready()
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
    if args.daemon and "stdio" in (urls[0], urls[1]):
        print("vnet plug: -d needs two URLs (a daemon has no stdin/stdout)", file=sys.stderr)
        return 2
    descr = args.descr if args.descr is not None else "vnet plug:"
    log = logging.getLogger("vnet.plug")
    log.propagate = False
    log.setLevel(logging.INFO)
    logging_on = args.log or args.iplog
    if logging_on and not to_syslog(log, "vnet-plug"):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("vnet plug: %(message)s"))
        log.addHandler(handler)
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = str(os.getuid())
    verdict = Verdict("vnet plug", daemonize("vnet plug") if args.daemon else -1, "vnet-plug")
    started = False

    def ready() -> None:
        nonlocal started
        started = True
        verdict("ok")
        if logging_on:
            log.info("START user=%s %s %s", user, urls[0], urls[1])

    sniff = IpLog(log, urls[1]) if args.iplog else None
    try:
        u1 = with_vde_options(urls[0], descr, args.group, args.mode)
        u2 = with_vde_options(urls[1], descr, args.group2, args.mode2)
        if args.pidfile:
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        run_loop(lambda rt: plug(rt, u1, u2, ready, sniff))
    except UrlError as e:
        verdict(str(e))
        return 1
    except ModuleNotFoundError as e:
        verdict(f"this URL scheme is not available yet ({e.name} is missing)")
        return 1
    except OSError as e:
        verdict(f"{e.strerror or e}" + (f": {e.filename}" if getattr(e, "filename", None) else ""))
        return 1
    finally:
        if started and logging_on:
            log.info("STOP user=%s %s %s", user, urls[0], urls[1])
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0
