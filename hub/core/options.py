"""Projects and namespace options: the per-channel rules every adapter obeys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class NamespaceOptions:
    """What clients may do in the channels of one namespace."""

    publish: bool = False
    anonymous: bool = False
    presence: bool = True
    join_leave: bool = True
    history_size: int = 0
    history_lifetime: float = 0.0

    @property
    def keeps_history(self) -> bool:
        return self.history_size > 0 and self.history_lifetime > 0


@dataclass(frozen=True, slots=True)
class Project:
    """A tenant: its key, secret, default channel options and named namespaces."""

    key: str
    secret: str
    options: NamespaceOptions = NamespaceOptions()
    namespaces: dict[str, NamespaceOptions] = field(default_factory=dict)
    connection_lifetime: int = 0
    max_channel_length: int = 255
    api_keys: tuple[str, ...] = ()
