"""distrodebug: debug distroless containers without putting a shell in the image."""

__version__ = "0.1.0"
