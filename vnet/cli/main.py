"""`vnet` command: one module per subcommand in vnet.cli, each with `add_arguments` and `run`."""

from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("vnet.cli.demo", "run the demo network (no root needed)"),
    "switch": ("vnet.cli.switch", "a VDE-compatible virtual Ethernet switch"),
    "plug": ("vnet.cli.plug", "join a URL to stdio, or two URLs together (like vde_plug)"),
    "wirefilter": ("vnet.cli.wirefilter", "a link emulator between two URLs (like wirefilter)"),
    "ctl": ("vnet.cli.ctl", "send a command to a daemon's control socket"),
    "host": ("vnet.cli.host", "a user-space IPv4/IPv6 host or router"),
    "vrr": ("vnet.cli.vrr", "a Virtual Ring Routing node, or `vnet vrr sim`"),
}


class OneLineParser(argparse.ArgumentParser):
    """Bad flags get one line saying what is wrong and where help is, not a usage block."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"{self.prog}: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vnet", description="virtual networks in user space")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue  # not built yet
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
