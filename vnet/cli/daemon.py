"""Background start and syslog for the daemons (`vnet switch -d`, `vnet plug -d`).

`daemonize()` forks twice; the first parent waits on a pipe for the child's one-line
verdict (`ok`, or the error the user must see), so `-d` still reports a failed start
with exit status 1, as a foreground start would.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys


def daemonize(prog: str) -> int:
    """Fork to the background; the parent exits with the child's verdict.

    Returns the write end of the readiness pipe in the child (see `Verdict`)."""
    r, w = os.pipe()
    if os.fork() > 0:
        os.close(w)
        with os.fdopen(r) as f:
            verdict = f.read().strip()
        if verdict == "ok":
            os._exit(0)
        print(f"{prog}: {verdict or 'failed to start'}", file=sys.stderr)
        os._exit(1)
    os.close(r)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1):
        os.dup2(devnull, fd)
    os.close(devnull)
    return w


class Verdict:
    """How the start went: to the waiting parent (daemon mode) or to the user's stderr."""

    def __init__(self, prog: str, fd: int, tag: str) -> None:
        self.prog = prog
        self.fd = fd
        self.tag = tag

    def __call__(self, text: str) -> None:
        if self.fd < 0:
            if text != "ok":
                print(f"{self.prog}: {text}", file=sys.stderr)
            return
        os.write(self.fd, text.encode() + b"\n")
        os.close(self.fd)
        self.fd = -1
        if text == "ok":  # from now on messages go to syslog, as vde2's daemons do
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
            to_syslog(logging.getLogger(), self.tag)


def syslog_address() -> str:
    """/dev/log, or $VNET_SYSLOG (a Unix datagram socket; tests and containers use it)."""
    return os.environ.get("VNET_SYSLOG", "/dev/log")


def to_syslog(logger: logging.Logger, tag: str) -> bool:
    """Send `logger`'s records to syslog (daemon facility) instead of its handlers.
    False (and nothing changed) when there is no syslog socket."""
    addr = syslog_address()
    if not os.path.exists(addr):
        return False
    try:
        handler = logging.handlers.SysLogHandler(
            address=addr, facility=logging.handlers.SysLogHandler.LOG_DAEMON)
    except OSError:
        return False
    handler.setFormatter(logging.Formatter(f"{tag}[{os.getpid()}]: %(message)s"))
    for h in list(logger.handlers):
        logger.removeHandler(h)
    logger.addHandler(handler)
    return True
