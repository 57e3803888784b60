"""Small helpers shared by the tests."""

from __future__ import annotations

from vnet.link.port import Port


def recorders(*names: str) -> list[tuple[Port, list[bytes]]]:
    """Ports that keep every frame handed to them: `[(port, frames), ...]`, one per name."""
    out = []
    for name in names:
        port = Port(name)
        got: list[bytes] = []
        port.receive = got.append
        out.append((port, got))
    return out
