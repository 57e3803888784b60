"""Wire formats: parse and build headers. No state, no I/O; imports nothing else of vnet."""

from vnet.wire.errors import WireError

__all__ = ["WireError"]
