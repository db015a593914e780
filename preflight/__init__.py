"""preflight: prove a PBXware or SERVERware host is ready for remote support."""

__version__ = "0.1.0"
