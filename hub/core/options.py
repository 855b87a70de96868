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
    # Today's Centrifugo namespace options (the SDK protocol and its server API obey them; names as in its config).
    force_push_join_leave: bool = False  # join/leave pushes even to subscribers that did not ask for them
    force_positioning: bool = False
    force_recovery: bool = True
    allow_subscribe_for_client: bool = True  # connected clients subscribe without a subscription token
    allow_publish_for_client: bool = False  # any connected client may publish (not only subscribers with `publish`)
    allow_presence_for_subscriber: bool = True
    allow_history_for_subscriber: bool = True
    # Centrifugo v6: presence/history without being subscribed; what anonymous users (user "") may do.
    allow_presence_for_client: bool = False
    allow_history_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = True  # `name#user1,user2` channels
    allow_tags_filter: bool = False
    delta_fossil: bool = False  # Fossil delta compression for subscribers that ask for it
    # Centrifugo 6.8 map subscriptions (subscription_type "map"): "" (a stream namespace), "ephemeral" (keys expire
    # after map_key_ttl, no stream), "recoverable" or "persistent" (a stream of changes: history_size/lifetime).
    map_mode: str = ""
    map_type: int = 1  # the subscribe `type` of its channels: 1 map, 2 map clients (presence)
    map_key_ttl: float = 0.0
    map_publish_for_client: bool = False  # any connected client may publish keys (map.allow_publish_for_client)
    map_publish_for_subscriber: bool = False  # subscribers may (map.allow_publish_for_subscriber)
    map_remove_for_client: bool = False
    map_client_key: str = ""  # "client_id": a client's publications go under its connection id, whatever key it sent
    map_presence_prefix: str = ""  # map_clients_presence_channel_prefix: subscribers are entries of prefix+channel
    publish_debounce: float = 0.0  # client_publish_debounce_interval (seconds), told to map subscribers

    @property
    def is_map(self) -> bool:
        return bool(self.map_mode)

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
