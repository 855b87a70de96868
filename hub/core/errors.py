"""Errors the core raises; adapters map each to their protocol's error shape."""

from __future__ import annotations


class HubError(Exception):
    """A request the core refuses. `message` is a short, stable, protocol-neutral text."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProjectNotFound(HubError):
    def __init__(self) -> None:
        super().__init__("project not found")


class NamespaceNotFound(HubError):
    def __init__(self) -> None:
        super().__init__("namespace not found")


class ChannelRequired(HubError):
    def __init__(self) -> None:
        super().__init__("channel required")


class ChannelTooLong(HubError):
    def __init__(self) -> None:
        super().__init__("maximum channel length exceeded")


class PermissionDenied(HubError):
    def __init__(self) -> None:
        super().__init__("permission denied")


class NotAvailable(HubError):
    def __init__(self) -> None:
        super().__init__("not available")


class Unavailable(HubError):
    """The shared engine (Redis) cannot be reached right now: the request fails at once, never hangs."""

    def __init__(self) -> None:
        super().__init__("internal server error")


class Unrecoverable(HubError):
    """A subscriber asked to recover from a position the stream no longer covers, and required it."""

    def __init__(self) -> None:
        super().__init__("unrecoverable position")
