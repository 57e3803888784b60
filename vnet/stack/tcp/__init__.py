"""TCP: the per-host layer (`Tcp`) and its connections."""

from vnet.stack.tcp.connection import STATE_NAMES, Connection
from vnet.stack.tcp.layer import Listener, Tcp, TcpConfig

__all__ = ["Connection", "Listener", "STATE_NAMES", "Tcp", "TcpConfig"]
