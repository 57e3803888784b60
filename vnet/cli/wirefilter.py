"""`vnet wirefilter`: an emulated cable between two networks, with wirefilter's flags.

    vnet wirefilter -v /tmp/sw1:/tmp/sw2 -d 20+5N -l 1          # two VDE switches (as Debian's -v)
    vnet wirefilter vde:///tmp/sw1 tcp://host:5000 -b 1M        # any two attachment URLs
    dpipe vde_plug /tmp/s1 = vnet wirefilter -d 20 = vde_plug /tmp/s2   # in a dpipe chain

Each value flag may repeat with a direction prefix (`-d LR20 -d RL10`). With no
URL and no -v, the wire runs between stdin/stdout and dpipe's ALTERNATE_STDIN /
ALTERNATE_STDOUT (LR: stdin -> alternate stdout, RL: alternate stdin -> stdout),
as wirefilter does. `-M SOCK` opens a control socket with wirefilter's console
commands (`delay LR 20+5N`, `loss 5`, `showinfo`, Markov mode ...); talk to it with
`vnet ctl SOCK ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import shlex
import shutil
import signal
import sys
import time
from typing import Any

from vnet.cli.rcfile import RcFileError, command_lines
from vnet.link.capture import Capture, CaptureError
from vnet.link.wirefilter import PARAMS, SYNTAX, UNITS, WireFilter, WireFilterError
from vnet.runtime.realtime import AsyncioRuntime
from vnet.runtime.realtime import run as run_realtime

PROG = "vnet wirefilter"
# (short flag, long flag, parameter, help)
FLAGS = [
    ("-l", "--loss", "loss", "loss percentage (Bernoulli, or Gilbert with -L)"),
    ("-L", "--lostburst", "lostburst", "mean length of loss bursts (Gilbert model)"),
    ("-d", "--delay", "delay", "delay in ms, e.g. 20, 20+5 (uniform), 20+5N (normal)"),
    ("-D", "--dup", "dup", "duplication percentage"),
    ("-b", "--bandwidth", "bandwidth", "channel bandwidth in bytes/s (K/M/G = 2^10..)"),
    ("-s", "--speed", "speed", "interface speed in bytes/s"),
    ("-c", "--chanbufsize", "chanbufsize", "channel buffer size in bytes (excess dropped)"),
    ("-n", "--noise", "noise", "damaged bits per MiB"),
    ("-m", "--mtu", "mtu", "frames longer than this are dropped"),
]


class Fail(Exception):
    """A user error: printed as one line, exit status 2 (1 for runtime failures)."""

    def __init__(self, message: str, status: int = 2) -> None:
        super().__init__(message)
        self.status = status


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, no usage block
        print(f"{PROG}: {message} (see {PROG} --help)", file=sys.stderr)
        raise SystemExit(2)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.error = _Parser.error.__get__(p)  # type: ignore[method-assign]
    known = p.parse_known_args

    def strict(args: Any = None, namespace: Any = None) -> Any:
        # Unknown flags would otherwise be reported by `vnet`'s own parser with a usage block.
        ns, extras = known(args, namespace)
        if extras:
            p.error(f"unrecognized arguments: {' '.join(extras)}")
        return ns, extras

    p.parse_known_args = strict  # type: ignore[method-assign]
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.epilog = (f"VALUE syntax: {SYNTAX}; K/M/G = 2^10/2^20/2^30; U uniform (default) or N normal "
                "jitter (sigma = JITTER/3); LR = first URL to second, RL = back.")
    p.add_argument("urls", nargs="*", metavar="URL",
                   help="the two ends (vde:///dir, tcp://, udp://, tap://, cmd://, stdio, ...)")
    p.add_argument("-v", "--vde-plug", dest="vde", metavar="SW1:SW2",
                   help="join two VDE switch directories (as Debian's wirefilter -v)")
    for short, long, param, help_text in FLAGS:
        p.add_argument(short, long, dest=param, action="append", metavar="VALUE", help=help_text)
    p.add_argument("-N", "--nofifo", action="store_true", help="allow reordering (jitter may reorder)")
    p.add_argument("-M", "--mgmt", metavar="SOCK", help="control socket (wirefilter console commands)")
    p.add_argument("--mgmtmode", metavar="OCTAL", default="600",
                   help="control socket permissions (default 600)")
    p.add_argument("-g", "--group", help="group owning the control socket")
    p.add_argument("--pcap", metavar="FILE",
                   help="capture both ends to FILE (.pcap classic, otherwise pcapng)")
    p.add_argument("-f", "--rcfile", metavar="FILE",
                   help="apply console commands from FILE first (e.g. `delay LR 20+5N`)")
    p.add_argument("--seed", type=int, help="random seed (reproducible loss/jitter draws)")
    p.add_argument("--blink", metavar="SOCK",
                   help="send one datagram per delivered frame (\"ID LR LEN\") to this Unix socket")
    p.add_argument("--blinkid", metavar="ID", default="",
                   help="the ID that starts each --blink message")
    p.add_argument("-p", "--pidfile", help="write our pid to this file")
    p.add_argument("-q", "--quiet", action="store_true", help="do not print counters on exit")


# ---- building the wire ------------------------------------------------------------------


def configure(wf: WireFilter, args: argparse.Namespace) -> None:
    if args.rcfile:
        load_rcfile(wf, args.rcfile)
    for _s, long, param, _h in FLAGS:
        for value in getattr(args, param) or ():
            try:
                wf.set(param, value)
            except WireFilterError as e:
                raise Fail(f"{long}/{_s}: {e}") from None
    if args.nofifo:
        wf.set_fifo(False)


def _ints(text: str, n: int, what: str) -> list[str]:
    parts = [x.strip() for x in text.split(",", n - 1)]
    if len(parts) != n or not all(parts):
        raise WireFilterError(f"{what}: expected {n} comma-separated fields, not {text!r}")
    return parts


def _num(text: str, what: str, kind: type = int) -> Any:
    try:
        return kind(text)
    except ValueError:
        raise WireFilterError(f"{what}: {text!r} is not a number") from None


def markov_command(wf: WireFilter, cmd: str, arg: str) -> str:
    """wirefilter's Markov console commands, with its argument syntax."""
    if cmd == "markov-numnodes":
        wf.markov_resize(_num(arg, cmd))
    elif cmd == "markov-setnode":
        wf.set_node(_num(arg, cmd))
    elif cmd == "markov-time":
        wf.set_markov_time(_num(arg, cmd, float))
    elif cmd == "markov-name":
        n, _, name = arg.partition(",")
        wf.set_node_name(_num(n.strip(), cmd), name)
    elif cmd == "setedge":
        i, j, w = _ints(arg, 3, cmd)
        wf.set_edge(_num(i, cmd), _num(j, cmd), _num(w, cmd, float))
    else:  # pragma: no cover - callers pass known names
        raise WireFilterError(f"unknown command {cmd!r}")
    return ""


MARKOV_COMMANDS = {
    "markov-numnodes": ("N", "Markov mode: number of nodes (1 = off)"),
    "markov-setnode": ("N", "Markov mode: make node N current"),
    "markov-name": ("N,NAME", "Markov mode: name node N"),
    "markov-time": ("MS", "Markov mode: period between steps (default 100 ms)"),
    "setedge": ("N1,N2,W", "Markov mode: P(N1 -> N2) per step in %"),
}
RC_COMMANDS = set(PARAMS) | {"band", "capacity", "fifo"} | set(MARKOV_COMMANDS)


def load_rcfile(wf: WireFilter, path: str) -> int:
    """Apply a file of console commands (`delay LR 20+5N`, `fifo 0`, `# comments`)."""
    try:
        lines = command_lines(path)
    except RcFileError as e:
        raise Fail(str(e)) from None
    n = 0
    for lineno, words in lines:
        cmd, rest = words[0].lower(), words[1:]
        if cmd not in RC_COMMANDS:
            raise Fail(f"{path}:{lineno}: unknown command {words[0]!r}: use "
                       f"{', '.join(sorted(RC_COMMANDS))}")
        if not rest:
            raise Fail(f"{path}:{lineno}: {cmd} needs a value, e.g. {cmd} LR 20")
        try:
            if cmd in MARKOV_COMMANDS:
                markov_command(wf, cmd, " ".join(rest))
            else:
                wf.set(cmd, "".join(rest))
        except WireFilterError as e:
            raise Fail(f"{path}:{lineno}: {e}") from None
        n += 1
    return n


def endpoints(args: argparse.Namespace) -> list[str] | None:
    """The two URLs, or None for the stdin/stdout (dpipe) mode."""
    if args.vde and args.urls:
        raise Fail("give either -v SW1:SW2 or two URLs, not both")
    if args.vde:
        parts = args.vde.split(":")
        if len(parts) != 2 or not all(parts):
            raise Fail(f"-v wants two switch directories as SW1:SW2, not {args.vde!r}")
        for path in parts:
            if path != "-" and "://" not in path and not os.path.exists(os.path.join(path, "ctl")):
                raise Fail(f"no VDE switch at {path} (no {path}/ctl): start one with "
                           f"`vnet switch -s {path}` or `vde_switch -s {path}`", 1)
        return [_vde_url(p) for p in parts]
    if len(args.urls) == 2:
        return list(args.urls)
    if not args.urls:
        return None
    raise Fail(f"give two URLs (or -v SW1:SW2, or none inside dpipe), not {len(args.urls)}")


def _vde_url(path: str) -> str:
    if path == "-":
        return "stdio"
    if "://" in path:
        return path
    if importlib.util.find_spec("vnet.phy.vde_client") is None and shutil.which("vde_plug"):
        # No native VDE client in this build: reach the switch through Debian's vde_plug.
        return "cmd://vde_plug " + shlex.quote(path)
    return "vde://" + path


def make_console(wf: WireFilter, state: dict[str, Any]):
    from vnet.control.server import CommandError, Console

    console = Console(banner="VDEwf")

    def setter(param: str):
        def handler(words: list[str]) -> str:
            if not words:
                return f"{param}: L->R {wf.get(param, 'LR')}   R->L {wf.get(param, 'RL')}"
            try:
                wf.set(param, "".join(words))
            except WireFilterError as e:
                raise CommandError(str(e)) from None
            return ""
        return handler

    for param in PARAMS:
        console.add(param, setter(param), "[LR|RL] VALUE",
                    f"set {param} ({UNITS[param]}), e.g. {param} LR 20+5N")
    console.add("band", setter("bandwidth"), "[LR|RL] VALUE", "same as bandwidth")
    console.add("capacity", setter("chanbufsize"), "[LR|RL] VALUE", "same as chanbufsize")

    def fifo(words: list[str]) -> str:
        if not words:
            return f"fifo {1 if wf.lr.fifo else 0}"
        try:
            wf.set("fifo", words[0])
        except WireFilterError as e:
            raise CommandError(str(e)) from None
        return ""

    console.add("fifo", fifo, "0|1", "1 keeps frames in order, 0 lets jitter reorder them")
    def markov(cmd: str):
        def handler(words: list[str]) -> str:
            try:
                return markov_command(wf, cmd, " ".join(words))
            except WireFilterError as e:
                raise CommandError(str(e)) from None
        return handler

    for cmd, (syntax, help_text) in MARKOV_COMMANDS.items():
        console.add(cmd, markov(cmd), syntax, help_text)

    def node_arg(words: list[str], cmd: str) -> int | None:
        if not words:
            return None
        try:
            return _num(words[0], cmd)
        except WireFilterError as e:
            raise CommandError(str(e)) from None

    def showinfo(words: list[str]) -> str:
        try:
            return wf.showinfo(node_arg(words, "showinfo"))
        except WireFilterError as e:
            raise CommandError(str(e)) from None

    def showedges(words: list[str]) -> str:
        try:
            return wf.showedges(node_arg(words, "showedges"))
        except WireFilterError as e:
            raise CommandError(str(e)) from None

    console.add("showinfo", showinfo, "[N]", "show parameters (of Markov node N) and counters")
    console.add("showedges", showedges, "[N]", "Markov mode: edges out of node N")
    console.add("showcurrent", lambda w: wf.showcurrent(), "", "Markov mode: the current node")
    console.add("counters", lambda w: wf.counters(), "", "per-direction counters (JSON with --json)")

    def capture(words: list[str]) -> str:
        if not words or words[0] not in ("start", "stop"):
            raise CommandError("capture start FILE | capture stop")
        if words[0] == "stop":
            cap = state.pop("capture", None)
            if cap is None:
                raise CommandError("no capture is running")
            cap.close()
            return f"capture stopped: {cap.frames} frames"
        if len(words) != 2:
            raise CommandError("capture start FILE")
        if "capture" in state:
            raise CommandError("a capture is already running: capture stop first")
        state["capture"] = start_capture(wf, words[1])
        return f"capturing to {words[1]}"

    def load(words: list[str]) -> str:
        if len(words) != 1:
            raise CommandError("load FILE")
        try:
            n = load_rcfile(wf, words[0])
        except Fail as e:
            raise CommandError(str(e)) from None
        return f"{n} settings loaded from {words[0]}"

    console.add("load", load, "FILE", "apply console commands from FILE")
    console.add("capture", capture, "start FILE|stop", "capture both ends to pcap/pcapng")

    def shutdown(words: list[str]) -> str:
        state["stop"].set()
        return "shutting down"

    console.add("shutdown", shutdown, "", "stop the wire and exit")
    return console


def start_capture(wf: WireFilter, path: str) -> Capture:
    rt = wf.rt
    try:
        cap = Capture.to_file(path, rt, epoch_offset=time.time() - rt.now())
    except CaptureError as e:
        raise Fail(str(e)) from None
    cap.watch(wf.port_a, "A")
    cap.watch(wf.port_b, "B")
    return cap


def start_blink(wf: WireFilter, path: str, ident: str) -> Any:
    """wirefilter's --blink: a datagram per frame leaving the wire, `ID LR LEN` (LEN as
    wirefilter counts it: the frame plus its 2-byte stream header). Best effort: a
    full or missing listener loses messages, never frames."""
    import socket

    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setblocking(False)
    prefix = f"{ident} " if ident else ""

    def wrap(port: Any, label: str) -> None:
        send_frame = port.transmit
        sendto = sock.sendto

        def transmit(frame: bytes) -> None:
            try:
                sendto(f"{prefix}{label} {len(frame) + 2}\n".encode(), path)
            except OSError:
                pass
            send_frame(frame)

        port.transmit = transmit

    wrap(wf.port_b, "LR")
    wrap(wf.port_a, "RL")
    return sock


# ---- running ------------------------------------------------------------------------------


async def _attach_all(wf: WireFilter, urls: list[str] | None, rt: AsyncioRuntime) -> list[Any]:
    from vnet.phy.stream import StreamAttachment
    from vnet.phy.url import UrlError, attach

    if urls is None:
        return _dpipe_attachments(wf, rt, StreamAttachment)
    done: list[Any] = []
    for url, port in zip(urls, (wf.port_a, wf.port_b), strict=True):
        try:
            done.append(await attach(url, port, rt))
        except (UrlError, ValueError) as e:
            _close_all(done)
            raise Fail(str(e)) from None
        except ModuleNotFoundError as e:
            _close_all(done)
            raise Fail(f"{url}: this build has no driver for it ({e.name})", 1) from None
        except OSError as e:
            _close_all(done)
            raise Fail(f"{url}: {e.strerror or e}", 1) from None
    return done


def _dpipe_attachments(wf: WireFilter, rt: AsyncioRuntime, stream_cls: Any) -> list[Any]:
    alt_in, alt_out = os.environ.get("ALTERNATE_STDIN"), os.environ.get("ALTERNATE_STDOUT")
    if alt_in is None or alt_out is None:
        raise Fail("no URLs given and not inside dpipe: give two URLs, -v SW1:SW2, or run "
                   "as `dpipe A = vnet wirefilter ... = B`")
    try:
        rfd_b, wfd_a = int(alt_in), int(alt_out)
        os.fstat(rfd_b)
        os.fstat(wfd_a)
    except (ValueError, OSError):
        raise Fail(f"ALTERNATE_STDIN={alt_in!r}/ALTERNATE_STDOUT={alt_out!r} are not open fds") from None
    # A side: we read LR frames on stdin and send RL frames back on stdout;
    # B side: RL frames come on the alternate stdin, LR frames go to the alternate stdout.
    a = stream_cls(rt, wf.port_a, os.dup(0), os.dup(1), label="stdin/stdout")
    b = stream_cls(rt, wf.port_b, rfd_b, wfd_a, label="alternate stdin/stdout")
    return [a, b]


def _close_all(attachments: list[Any]) -> None:
    for att in attachments:
        try:
            att.close()
        except Exception:  # noqa: BLE001 - best effort on the way out
            pass


async def _main(rt: AsyncioRuntime, args: argparse.Namespace, urls: list[str] | None) -> int:
    wf = WireFilter.standalone(rt)
    configure(wf, args)
    stop = asyncio.Event()
    state: dict[str, Any] = {"stop": stop}
    server = None
    blink_sock = None
    attachments: list[Any] = []
    try:
        attachments = await _attach_all(wf, urls, rt)
        if args.blink:
            blink_sock = start_blink(wf, args.blink, args.blinkid)
        if args.pcap:
            state["capture"] = start_capture(wf, args.pcap)
        if args.mgmt:
            from vnet.control.server import ControlServer

            try:
                mode = int(args.mgmtmode, 8)
            except ValueError:
                raise Fail(f"--mgmtmode {args.mgmtmode!r} is not an octal mode like 600") from None
            # Debian wirefilter's console dialect: banner, "VDEwf$ " prompt, DATA framing
            server = ControlServer(make_console(wf, state), args.mgmt, mode, args.group,
                                   prompt="VDEwf$ ", banner="vnet wirefilter (VDE-compatible)")
            try:
                await server.start()
            except KeyError:
                raise Fail(f"-g {args.group}: no such group") from None
            except OSError as e:
                raise Fail(f"-M {args.mgmt}: {e.strerror or e}", 1) from None
        if args.pidfile:
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            rt.loop.add_signal_handler(sig, stop.set)
        waiters = [asyncio.ensure_future(stop.wait())]
        for att in attachments:
            if hasattr(att, "wait_closed"):
                waiters.append(asyncio.ensure_future(att.wait_closed()))
        done, pending = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        for w in pending:
            w.cancel()
        if not stop.is_set():
            print(f"{PROG}: an end closed; stopping", file=sys.stderr)
    finally:
        if blink_sock is not None:
            blink_sock.close()
        cap = state.get("capture")
        if cap is not None:
            cap.close()
        if server is not None:
            await server.close()
        wf.close()
        _close_all(attachments)
        if args.pidfile:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    if not args.quiet:
        print(f"{PROG}: {wf.summary()}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        # Check every value before touching the network, so typos fail fast.
        configure(WireFilter.standalone(_NoClock()), args)
        urls = endpoints(args)
        return int(run_realtime(lambda rt: _main(rt, args, urls), seed=args.seed) or 0)
    except Fail as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.status


class _NoClock:
    """A runtime stand-in for validating flags; never asked for time."""

    import random as _random

    rng = _random.Random(0)

    def now(self) -> float:
        return 0.0

    def call_at(self, *a: Any) -> _NoClock:
        return self  # a timer that never fires (the dry run only checks values)

    call_later = call_soon = call_at

    def cancel(self) -> None:
        pass
