"""Channel name rules: `$` private prefix, `ns:` namespace, `#u1,u2` user-limited channels."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ChannelRequired, ChannelTooLong, NamespaceNotFound
from .options import NamespaceOptions, Project

PRIVATE_PREFIX = "$"
NAMESPACE_BOUNDARY = ":"
USER_BOUNDARY = "#"
USER_SEPARATOR = ","


@dataclass(frozen=True, slots=True)
class ChannelName:
    """A parsed channel name with the options that govern it."""

    name: str
    namespace: str
    private: bool
    users: frozenset[str] | None
    options: NamespaceOptions

    def allows_user(self, user: str) -> bool:
        return self.users is None or user in self.users


def _resolve(project: Project, channel: object) -> tuple[str, str, NamespaceOptions]:
    """(name without the private prefix, namespace, its options) of a channel name that keeps the project's rules."""
    if not isinstance(channel, str) or not channel:
        raise ChannelRequired()
    if len(channel) > project.max_channel_length:
        raise ChannelTooLong()
    bare = channel[1:] if channel.startswith(PRIVATE_PREFIX) else channel
    if NAMESPACE_BOUNDARY in bare:
        namespace = bare.split(NAMESPACE_BOUNDARY, 1)[0]
        if namespace:
            options = project.namespaces.get(namespace)
            if options is None:
                raise NamespaceNotFound()
            return bare, namespace, options
    return bare, "", project.options


def channel_options(project: Project, channel: object) -> NamespaceOptions:
    """The options that govern `channel`, checked as `parse_channel` checks it, without building a ChannelName
    (the publish path needs nothing else)."""
    return _resolve(project, channel)[2]


def parse_channel(project: Project, channel: object) -> ChannelName:
    """Validate `channel` against the project's rules; raise a HubError if it breaks one."""
    bare, namespace, options = _resolve(project, channel)
    users = None
    if USER_BOUNDARY in bare:
        allowed = bare.rsplit(USER_BOUNDARY, 1)[1]
        users = frozenset(u for u in allowed.split(USER_SEPARATOR) if u)
    return ChannelName(channel, namespace, len(bare) != len(channel), users, options)  # type: ignore[arg-type]
