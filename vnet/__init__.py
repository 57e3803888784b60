"""vnet: virtual networks in user space."""

__version__ = "0.1.0"
