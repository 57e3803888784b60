"""The one error every parser in `vnet.wire` raises on bad input."""


class WireError(ValueError):
    """Malformed, truncated or unsupported bytes. Engines count these and drop the frame."""
