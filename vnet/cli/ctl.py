"""`vnet ctl SOCK COMMAND [ARGS...]`: run one command on a daemon and print the result."""

from __future__ import annotations

import argparse
import json
import sys

from vnet.control.client import ControlError, call
from vnet.control.server import render


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("sock", help="the daemon's control socket")
    p.add_argument("words", nargs="+", metavar="COMMAND", help="command and its arguments")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")


def run(args: argparse.Namespace) -> int:
    name, *rest = args.words
    try:
        result = call(args.sock, name, *rest, timeout=args.timeout)
    except ControlError as e:
        print(f"vnet ctl: {e}", file=sys.stderr)
        return 1
    except TimeoutError:
        print(f"vnet ctl: no reply within {args.timeout} s", file=sys.stderr)
        return 1
    text = json.dumps(result, indent=2) if args.json else render(result)
    if text:
        try:
            print(text, flush=True)
        except BrokenPipeError:  # `vnet ctl ... | head`: the reader left; not an error
            sys.stderr.close()
            return 0
    # Commands that test reachability (ping) report failure through a false "ok" field.
    if isinstance(result, dict) and result.get("ok") is False:
        return 1
    return 0
