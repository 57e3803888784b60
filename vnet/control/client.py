"""Client side of the control socket (`vnet ctl SOCK COMMAND...`)."""

from __future__ import annotations

import json
import socket
from typing import Any


class ControlError(Exception):
    pass


def call(path: str, cmd: str, *args: str, timeout: float = 30.0) -> Any:
    """Run one command over the JSON protocol; return its result or raise ControlError."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except FileNotFoundError:
            raise ControlError(f"no control socket at {path}: is the daemon running?") from None
        except PermissionError:
            raise ControlError(f"permission denied on {path}: run as its owner or its group") from None
        except ConnectionRefusedError:
            raise ControlError(f"nothing listens on {path}: the daemon has stopped") from None
        s.sendall(json.dumps({"cmd": cmd, "args": list(args)}).encode() + b"\n")
        # A vde-dialect socket greets with a banner and a prompt first: the reply is the
        # first complete line that holds a JSON object (after any prompt text).
        buf = b""
        line = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                raise ControlError("the daemon closed the connection without replying")
            buf += chunk
            *lines, buf = buf.split(b"\n")
            line = next((ln[ln.index(b"{"):] for ln in lines if b"{" in ln), b"")
            if line:
                break
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "command failed"))
    return reply.get("result")
