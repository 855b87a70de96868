"""The in-memory core: no protocol, no sockets."""

from .channels import ChannelName, parse_channel
from .errors import (
    ChannelRequired,
    ChannelTooLong,
    HubError,
    NamespaceNotFound,
    NotAvailable,
    PermissionDenied,
    ProjectNotFound,
    Unavailable,
    Unrecoverable,
)
from .events import HubEvent
from .history import HistoryResult, Publication
from .hub import Hub
from .options import NamespaceOptions, Project
from .outbox import Outbox
from .session import Session, WireFormat

__all__ = [
    "ChannelName", "ChannelRequired", "ChannelTooLong", "HistoryResult", "Hub", "HubError", "HubEvent",
    "NamespaceNotFound", "NamespaceOptions", "NotAvailable", "Outbox", "PermissionDenied", "Project",
    "ProjectNotFound", "Publication", "Session", "Unavailable", "Unrecoverable", "WireFormat", "parse_channel",
]
