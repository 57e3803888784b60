"""`vnet switch`: a VDE-compatible virtual Ethernet switch.

vde_switch's flags where the meaning is the same (-s -M -n -x -m -g -t -d -p,
--hashsize, --mgmtmode, --mgmtgroup, --dirmode), plus --mtu (jumbo frames),
--stp (802.1D), --pcap FILE and --port URL. Unlike vde_switch it keeps running
when stdin reaches EOF (vde-2 issue #30) unless --exit-on-eof is given; stdin,
when it is a terminal or pipe, is a console speaking the same commands as -M.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import os
import signal
import stat
import sys
import time
from typing import Any

from vnet.cli.daemon import Verdict, daemonize
from vnet.control.server import Console, ControlServer
from vnet.link.switch import Switch, SwitchError
from vnet.runtime.realtime import AsyncioRuntime, new_event_loop

log = logging.getLogger("vnet.switch")


class Fatal(Exception):
    """One line for the user; the switch does not start."""


def _octal(text: str) -> int:
    try:
        v = int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an octal mode like 0660") from None
    if not 0 <= v <= 0o7777:
        raise argparse.ArgumentTypeError(f"mode {text} out of range")
    return v


def default_dir() -> str:
    return "/var/run/vde.ctl" if os.geteuid() == 0 else "/tmp/vde.ctl"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("-s", "--sock", "--vdesock", "--unix", dest="sock", default=None,
                   help=f"switch directory clients plug into (default {default_dir()})")
    p.add_argument("-M", "--mgmt", default=None, help="control socket for console commands")
    p.add_argument("--mgmtmode", type=_octal, default=0o600, help="mode of -M (default 0600)")
    p.add_argument("--mgmtgroup", default=None, help="group of -M")
    p.add_argument("-n", "--numports", type=int, default=32, help="number of ports (default 32)")
    p.add_argument("-x", "--hub", action="store_true", help="hub mode: flood every frame")
    p.add_argument("-m", "--mode", type=_octal, default=0o600,
                   help="mode of the ctl and data sockets (default 0600)")
    p.add_argument("--dirmode", type=_octal, default=None,
                   help="mode of the switch directory (default: derived from -m, 02700)")
    p.add_argument("-g", "--group", default=None, help="group owning the directory and sockets")
    p.add_argument("-t", "--tap", action="append", default=[], metavar="IF",
                   help="attach TAP interface IF to a port (root); repeatable")
    p.add_argument("--port", action="append", default=[], metavar="URL",
                   help="attach any URL (tap://, tcp://, udp://, vxlan://, vde://...) to a port; "
                        "repeatable")
    p.add_argument("-d", "--daemon", action="store_true", help="run in the background")
    p.add_argument("-p", "--pidfile", default=None, help="write the process id to this file")
    p.add_argument("--mtu", type=int, default=1500,
                   help="largest payload forwarded (default 1500; 9000 for jumbo frames)")
    p.add_argument("--stp", action="store_true", help="run 802.1D spanning tree")
    p.add_argument("--stp-priority", type=int, default=32768, metavar="N",
                   help="bridge priority, lowest wins the root election (default 32768)")
    p.add_argument("--stp-hello", type=float, default=2.0, metavar="S", help="hello time (2 s)")
    p.add_argument("--stp-max-age", type=float, default=20.0, metavar="S", help="max age (20 s)")
    p.add_argument("--stp-forward-delay", type=float, default=15.0, metavar="S",
                   help="forward delay (15 s)")
    p.add_argument("--pcap", default=None, metavar="FILE",
                   help="capture every port to FILE (.pcap, else pcapng)")
    p.add_argument("--hashsize", "--mac-table-size", dest="hashsize", type=int, default=65536,
                   help="MAC table capacity; the oldest entry is evicted when full (default 65536)")
    p.add_argument("--macaddr", default=None, help="the switch's own MAC (STP bridge id)")
    p.add_argument("-f", "--rcfile", metavar="FILE", default=None,
                   help="console commands to run at start, one per line (# comments), "
                        "before any client can connect (vde_switch's -f)")
    p.add_argument("--no-fast-path", action="store_true",
                   help="forward VDE ports in Python only (not the compiled fast path)")
    p.add_argument("--no-flow-control", action="store_true",
                   help="drop frames for a VDE client whose queue is full, as vde_switch "
                        "does, instead of pausing its senders for up to 20 ms")
    p.add_argument("--exit-on-eof", action="store_true",
                   help="exit when stdin reaches EOF (vde_switch's old behaviour)")
    p.add_argument("-v", "--verbose", action="store_true", help="log connections and more")


def _import(module: str, what: str) -> Any:
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name == module:
            raise Fatal(f"{what} is not available in this build ({module} is missing)") from None
        raise


class SwitchDaemon:
    def __init__(self, args: argparse.Namespace, rt: AsyncioRuntime) -> None:
        self.args = args
        self.rt = rt
        self.stop = rt.loop.create_future()
        self.attachments: dict[int, Any] = {}  # port index -> TAP/URL attachment
        self.capture: Any = None
        self.watched: dict[int, Any] = {}
        self.server: Any = None
        self.control: ControlServer | None = None
        self.switch: Switch | None = None

    def request_stop(self) -> None:
        if not self.stop.done():
            self.stop.set_result(None)

    async def start(self) -> None:
        a = self.args
        mac = None
        if a.macaddr:
            from vnet.wire.ethernet import mac_from_str
            try:
                mac = mac_from_str(a.macaddr)
            except ValueError:
                raise Fatal(f"--macaddr {a.macaddr!r} is not a MAC like 02:00:00:00:00:01") from None
        if a.hashsize < 1:
            raise Fatal(f"--hashsize {a.hashsize} must be >= 1")
        try:
            self.switch = sw = Switch(self.rt, numports=a.numports, hub=a.hub, mtu=a.mtu,
                                      mac_table_size=a.hashsize, mac=mac)
        except SwitchError as e:
            raise Fatal(str(e)) from None
        if a.stp:
            stp_mod = _import("vnet.link.stp", "--stp")
            try:
                stp_mod.Stp(sw, priority=a.stp_priority, hello_time=a.stp_hello,
                            max_age=a.stp_max_age, forward_delay=a.stp_forward_delay)
            except SwitchError as e:
                raise Fatal(str(e)) from None
        from vnet.phy.vde_server import VdeServer, VdeServerError
        self.server = VdeServer(sw, self.rt, a.sock or default_dir(), a.mode, a.group, a.dirmode,
                                fast=not a.no_fast_path)
        self.server.flow_control = not a.no_flow_control
        self.server.on_attach.append(self._wired)
        sw.on_port_change.append(self._port_changed)
        try:
            self.server.prepare()
        except VdeServerError as e:
            raise Fatal(str(e)) from None
        if a.pcap:
            self.start_pcap(a.pcap)
        for url in [f"tap://{t}" for t in a.tap] + list(a.port):
            await self.attach(url)
        console = Console(banner="vnet switch")
        from vnet.cli.switch_console import SwitchConsole
        sc = SwitchConsole(console, sw, self.server, shutdown=self.request_stop,
                           pcap_start=self.start_pcap, pcap_stop=self.stop_pcap,
                           remove_attachment=self.remove_attachment)
        sc.pcap_file = a.pcap  # --pcap is stopped and restarted by pcap/stop, pcap/start
        self.console = console
        if a.rcfile:
            await self.run_rcfile(a.rcfile)
        if a.mgmt:
            from vnet.cli.switch_console import VERSION
            self.control = ControlServer(console, a.mgmt, a.mgmtmode, a.mgmtgroup, prompt="vde$ ",
                                         banner=f"{VERSION}\n'help' lists the commands")
            try:
                await self.control.start()
            except KeyError:
                raise Fatal(f"group {a.mgmtgroup!r} does not exist: check --mgmtgroup") from None
            except OSError as e:
                raise Fatal(f"management socket {a.mgmt}: {e.strerror or e}") from None
        try:
            # last, so that once `ctl` exists everything (-M, TAPs, ports) is ready
            self.server.listen()
        except VdeServerError as e:
            raise Fatal(str(e)) from None

    async def run_rcfile(self, path: str) -> None:
        """Each line is a console command; the first that fails stops the start, with its line."""
        from vnet.cli.rcfile import RcFileError, command_lines
        from vnet.control.server import CommandError
        assert self.console is not None
        try:
            lines = command_lines(path)
        except RcFileError as e:
            raise Fatal(f"--rcfile: {e}") from None
        for no, (name, *args) in lines:
            try:
                await self.console.execute(name, args)
            except CommandError as e:
                raise Fatal(f"{path}:{no}: {' '.join([name, *args])}: {e}") from None

    async def attach(self, url: str) -> None:
        assert self.switch is not None
        from vnet.phy.url import UrlError, attach
        try:
            port = self.switch.add_port()
        except SwitchError as e:
            raise Fatal(f"{url}: {e}") from None
        index = next(i for i, r in self.switch.ports.items() if r.port is port)
        port.description = url
        try:
            att = await attach(url, port, self.rt)
        except UrlError as e:
            self.switch.remove_port(index)
            text = str(e)
            raise Fatal(text if url in text else f"{url}: {text}") from None
        except ModuleNotFoundError as e:
            self.switch.remove_port(index)
            raise Fatal(f"{url}: this URL scheme is not available yet ({e.name} is missing)"
                        ) from None
        except OSError as e:
            self.switch.remove_port(index)
            raise Fatal(f"{url}: {e.strerror or e}") from None
        self.attachments[index] = att
        self._wired(index, port)
        closed = getattr(att, "closed", None)
        if isinstance(closed, asyncio.Future):
            closed.add_done_callback(lambda _f, i=index: self.remove_attachment(i))

    def remove_attachment(self, index: int) -> bool:
        att = self.attachments.pop(index, None)
        if att is None:
            return False
        att.close()
        if self.switch is not None and index in self.switch.ports:
            self.switch.remove_port(index)
        return True

    # ---- capture ------------------------------------------------------------------------

    def start_pcap(self, path: str) -> None:
        cap_mod = _import("vnet.link.capture", "--pcap")
        try:
            self.capture = cap_mod.Capture.to_file(path, self.rt,
                                                   epoch_offset=time.time() - self.rt.now())
        except ValueError as e:  # CaptureError
            raise Fatal(str(e)) from None
        assert self.switch is not None
        for index, rec in self.switch.ports.items():
            self._wired(index, rec.port)

    def stop_pcap(self) -> str:
        cap, self.capture = self.capture, None
        self.watched.clear()
        if cap is None:
            return ""
        cap.close()
        return f"{cap.frames} frames"

    def _wired(self, index: int, port: Any) -> None:
        """A port was (re)attached: (re)wrap it for the capture."""
        cap = self.capture
        if cap is None:
            return
        cap.unwatch(port)
        cap.watch(port, f"port{index}")
        self.watched[index] = port

    def _port_changed(self, index: int, added: bool) -> None:
        if not added:
            port = self.watched.pop(index, None)
            if port is not None and self.capture is not None:
                self.capture.unwatch(port)

    # ---- stdin console ---------------------------------------------------------------------

    async def stdin_console(self) -> None:
        """Commands on stdin while in the foreground; EOF ends the console, not the switch."""
        loop = self.rt.loop
        try:
            st = os.fstat(0)
            usable = stat.S_ISFIFO(st.st_mode) or stat.S_ISSOCK(st.st_mode) or os.isatty(0)
        except OSError:
            usable = False
        if not usable:  # /dev/null, a regular file, closed: nothing to read interactively
            if self.args.exit_on_eof:
                self.request_stop()
            return
        lines: asyncio.Queue[bytes] = asyncio.Queue()
        pending = b""

        def readable() -> None:
            nonlocal pending
            try:
                chunk = os.read(0, 4096)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                loop.remove_reader(0)
                if pending:
                    lines.put_nowait(pending)
                lines.put_nowait(b"")
                return
            pending += chunk
            *done, pending = pending.split(b"\n")
            for line in done:
                lines.put_nowait(line + b"\n")
            if len(pending) > 4096:  # bounded: an endless line is cut
                lines.put_nowait(pending + b"\n")
                pending = b""

        try:
            loop.add_reader(0, readable)
        except (ValueError, OSError, RuntimeError):
            return
        interactive = os.isatty(0)
        try:
            while True:
                if interactive:
                    sys.stdout.write("vnet$ ")
                    sys.stdout.flush()
                line = await lines.get()
                if not line:
                    if self.args.exit_on_eof:
                        self.request_stop()
                    return
                text = line.decode("utf-8", "replace").strip()
                if text in ("logout", "quit", "exit"):
                    continue
                reply = await self.console.handle_line(text)
                if reply is not None:
                    print(reply, flush=True)
        finally:
            try:
                loop.remove_reader(0)
            except (ValueError, OSError, RuntimeError):
                pass

    async def close(self) -> None:
        for index in list(self.attachments):
            self.remove_attachment(index)
        if self.control is not None:
            await self.control.close()
        if self.capture is not None:
            self.stop_pcap()
        if self.server is not None:
            self.server.close()
        if self.switch is not None:
            self.switch.close()


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="vnet switch: %(message)s")
    verdict = Verdict("vnet switch", daemonize("vnet switch") if args.daemon else -1,
                      "vnet-switch")
    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    rt = AsyncioRuntime(loop)
    daemon = SwitchDaemon(args, rt)
    code = 0
    pidfile_written = False
    try:
        try:
            loop.run_until_complete(daemon.start())
        except Fatal as e:
            verdict(str(e))
            loop.run_until_complete(daemon.close())
            return 1
        if args.pidfile:
            try:
                with open(args.pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
                pidfile_written = True
            except OSError as e:
                verdict(f"cannot write pidfile {args.pidfile}: {e.strerror}")
                loop.run_until_complete(daemon.close())
                return 1
        verdict("ok")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, daemon.request_stop)
        console_task = None if args.daemon else loop.create_task(daemon.stdin_console())
        loop.run_until_complete(daemon.stop)
        if console_task is not None:
            console_task.cancel()
        loop.run_until_complete(daemon.close())
    except KeyboardInterrupt:
        code = 130
        loop.run_until_complete(daemon.close())
    finally:
        if pidfile_written:
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
        try:
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
    return code
