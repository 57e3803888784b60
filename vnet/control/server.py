"""The control socket every vnet daemon speaks.

A Unix stream socket (mode 0600 unless a group is given). Each line is a command:

* human: `port/print`, `ping 10.0.0.1` -> text lines, then `1000 Success` or
  `1EEE <message>` (the vde_switch console convention: EEE is an errno);
* JSON: `{"cmd": "port/print", "args": []}` -> one JSON line
  `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`.

Handlers take a list of string arguments and return a str (shown as is), or any
JSON-able value (rendered for humans), or an awaitable of either.

`ControlServer(..., prompt="vde$ ")` speaks vde_switch's management dialect to
humans, so vde2's `unixterm` and `vdecmd` (unixcmd's parse machine) work as with
vde_switch: a banner and the prompt on connect; a reply with output is
`0000 DATA END WITH '.'`, the lines, `.`, then `1000 Success` (or `1EEE error`), a
blank line and the prompt again. JSON requests still get exactly one JSON line.
"""

from __future__ import annotations

import asyncio
import errno
import grp
import inspect
import json
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Handler = Callable[[list[str]], Any | Awaitable[Any]]


class CommandError(Exception):
    """A command failed; the message is shown to the user. `code` is an errno for vde-style replies."""

    def __init__(self, message: str, code: int = errno.EINVAL) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Command:
    name: str
    handler: Handler
    syntax: str
    help: str


class Console:
    """A registry of commands; the same object serves the socket and a stdin console."""

    def __init__(self, banner: str = "vnet") -> None:
        self.banner = banner
        self.commands: dict[str, Command] = {}
        self.add("help", self._help, "[PREFIX]", "list commands (optionally those starting with PREFIX)")

    def add(self, name: str, handler: Handler, syntax: str = "", help: str = "") -> None:
        self.commands[name] = Command(name, handler, syntax, help)

    def _help(self, args: list[str]) -> str:
        prefix = args[0] if args else ""
        rows = [c for n, c in sorted(self.commands.items()) if n.startswith(prefix)]
        width = max((len(c.name) + len(c.syntax) + 1 for c in rows), default=10)
        return "\n".join(f"{(c.name + ' ' + c.syntax).strip():<{width}}  {c.help}" for c in rows)

    async def execute(self, name: str, args: list[str]) -> Any:
        cmd = self.commands.get(name)
        if cmd is None:
            raise CommandError(f"unknown command {name!r}: try 'help'", errno.ENOSYS)
        try:
            result = cmd.handler(args)
            if inspect.isawaitable(result):
                result = await result
        except CommandError:
            raise
        except (ValueError, KeyError, IndexError) as e:
            raise CommandError(f"{name}: {e}; syntax: {name} {cmd.syntax}".rstrip()) from None
        except Exception as e:  # noqa: BLE001 - a command must never kill the daemon
            raise CommandError(f"{name}: {type(e).__name__}: {e}", errno.EIO) from None
        return result

    async def handle_line(self, line: str) -> str | None:
        """One request line in, one reply (without trailing newline) out; None for blank lines."""
        line = line.strip()
        if not line or line.startswith("#"):
            return None
        if line.startswith("{"):
            try:
                req = json.loads(line)
                name = str(req["cmd"])
                args = [str(a) for a in req.get("args", [])]
            except (ValueError, KeyError, TypeError) as e:
                return json.dumps({"ok": False, "error": f"bad JSON request ({e}); "
                                   'send {"cmd": NAME, "args": [...]}'})
            try:
                result = await self.execute(name, args)
            except CommandError as e:
                return json.dumps({"ok": False, "error": str(e), "code": e.code})
            return json.dumps({"ok": True, "result": result}, default=str)
        name, *args = line.split()
        try:
            result = await self.execute(name, args)
        except CommandError as e:
            return f"1{e.code:03d} {e}"
        text = render(result)
        return f"{text}\n1000 Success" if text else "1000 Success"


def render(result: Any) -> str:
    if result is None:
        return ""
    if isinstance(result, str):
        return result.rstrip("\n")
    if isinstance(result, dict):
        return "\n".join(f"{k}: {render_value(v)}" for k, v in result.items())
    if isinstance(result, list):
        return "\n".join(render_value(v) for v in result)
    return str(result)


def render_value(v: Any) -> str:
    if isinstance(v, dict):
        return " ".join(f"{k}={render_value(x)}" for k, x in v.items())
    if isinstance(v, list | tuple):
        return ",".join(render_value(x) for x in v)
    return str(v)


class ControlServer:
    """Serves a Console on a Unix stream socket."""

    def __init__(self, console: Console, path: str, mode: int = 0o600, group: str | None = None,
                 prompt: str | None = None, banner: str = "") -> None:
        self.console = console
        self.prompt = prompt  # None: the plain dialect (no banner, no prompt, no DATA wrapper)
        self.banner = banner
        self.path = path
        self.mode = mode
        self.group = group
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        if os.path.exists(self.path):
            st = os.lstat(self.path)
            if not stat.S_ISSOCK(st.st_mode):
                raise OSError(f"{self.path} exists and is not a socket: choose another path")
            if await _socket_alive(self.path):
                raise OSError(f"{self.path} is in use by a running daemon: stop it or choose another path")
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._serve, path=self.path)
        os.chmod(self.path, self.mode)
        if self.group is not None:
            os.chown(self.path, -1, grp.getgrnam(self.group).gr_gid)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        vde = self.prompt is not None
        try:
            if vde:
                writer.write(f"{self.banner}\n\n{self.prompt}".encode())
                await writer.drain()
            while True:
                try:
                    raw = await reader.readline()
                except (ValueError, ConnectionError):  # line too long, reset
                    break
                if not raw:
                    break
                line = raw.decode("utf-8", "replace")
                if line.strip() in ("logout", "quit", "exit"):
                    writer.write(b"9999 END OF SESSION\n")
                    await writer.drain()
                    break
                reply = await self.console.handle_line(line)
                if vde and not line.lstrip().startswith("{"):
                    writer.write((vde_reply(reply) + (self.prompt or "")).encode())
                    await writer.drain()
                elif reply is not None:
                    writer.write(reply.encode() + b"\n")
                    await writer.drain()
        except ConnectionError:
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for w in list(self._clients):
                w.close()
            await self._server.wait_closed()
            self._server = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


def vde_reply(reply: str | None) -> str:
    """A plain reply (`text...\n1000 Success` or `1EEE error`) in vde_switch's framing."""
    if reply is None:  # a blank line: just the prompt again
        return ""
    body, _, code = reply.rpartition("\n")
    if body:
        return f"0000 DATA END WITH '.'\n{body}\n.\n{code}\n\n"
    return f"{code}\n\n"


async def _socket_alive(path: str) -> bool:
    try:
        _, w = await asyncio.wait_for(asyncio.open_unix_connection(path), 1.0)
    except (OSError, TimeoutError):
        return False
    w.close()
    return True
