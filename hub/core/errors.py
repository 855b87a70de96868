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
