"""Topic-filter subscriptions: sessions that receive the publications of every channel a filter matches.

Filters use MQTT's syntax over channel names: levels are separated by `/`, `+` matches exactly one
level, `#` (last) matches the rest, including nothing (`a/#` matches `a`). A filter may belong to a
shared group: then each publication goes to one member of the group, in turn. Channel names that
hold `+`, `#` or NUL are not topics and match nothing; a filter that starts with a wildcard does
not match channels starting with `$` (private channels).

The index is a tree of filter levels per project; a publication walks it once. With no filter
subscriptions in a project it costs one dict lookup, and the core skips it entirely while the
index is empty.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from .session import Session

SEPARATOR = "/"
SINGLE = "+"
MULTI = "#"


class FilterError(ValueError):
    """A topic filter that breaks the syntax rules."""


def validate_filter(text: str) -> None:
    """Raise FilterError unless `text` is a well-formed topic filter (`+`/`#` whole levels, `#` last)."""
    if not text:
        raise FilterError("empty topic filter")
    if "\x00" in text:
        raise FilterError("NUL in topic filter")
    levels = text.split(SEPARATOR)
    for i, level in enumerate(levels):
        if MULTI in level and (level != MULTI or i != len(levels) - 1):
            raise FilterError("'#' must be the whole last level")
        if SINGLE in level and level != SINGLE:
            raise FilterError("'+' must be a whole level")


def has_wildcards(text: str) -> bool:
    return SINGLE in text or MULTI in text


def is_topic(channel: str) -> bool:
    """A channel name that can be a topic name: no wildcard characters, no NUL, not empty."""
    return bool(channel) and SINGLE not in channel and MULTI not in channel and "\x00" not in channel


def matches(topic_filter: str, channel: str) -> bool:
    """Whether `topic_filter` matches the channel name `channel`."""
    if not is_topic(channel):
        return False
    f_levels = topic_filter.split(SEPARATOR)
    if channel.startswith("$") and f_levels[0] in (SINGLE, MULTI):
        return False
    c_levels = channel.split(SEPARATOR)
    for i, level in enumerate(f_levels):
        if level == MULTI:
            return True
        if i >= len(c_levels):
            return False
        if level != SINGLE and level != c_levels[i]:
            return False
    return len(f_levels) == len(c_levels)


class _Group:
    """Members of one shared subscription (`$share/<group>/<filter>`): one receives each publication."""

    __slots__ = ("members", "turn")

    def __init__(self) -> None:
        self.members: dict[str, Session] = {}
        self.turn = 0

    def pick(self) -> Session | None:
        members = self.members
        if not members:
            return None
        self.turn = (self.turn + 1) % len(members)
        for i, session in enumerate(members.values()):
            if i == self.turn:
                return session
        return None


class _Node:
    __slots__ = ("children", "exact", "rest", "exact_groups", "rest_groups")

    def __init__(self) -> None:
        self.children: dict[str, _Node] = {}
        self.exact: dict[str, Session] = {}   # filters ending at this level
        self.rest: dict[str, Session] = {}    # filters ending with `#` below this level
        self.exact_groups: dict[str, _Group] = {}
        self.rest_groups: dict[str, _Group] = {}

    def empty(self) -> bool:
        return not (self.children or self.exact or self.rest or self.exact_groups or self.rest_groups)


class TopicFilters:
    """The filter subscriptions of every session, by project: add/remove, and match a channel name."""

    def __init__(self) -> None:
        self._roots: dict[str, _Node] = {}
        self._by_session: dict[str, dict[tuple[str, str], Session]] = {}
        self._count = 0
        # Called when the first filter is added or the last removed: the core then asks the engine for
        # every channel's publications (with several nodes, matching channels may have no local subscriber).
        self.on_change: Callable[[bool], None] | None = None

    def __bool__(self) -> bool:
        return self._count > 0

    def __len__(self) -> int:
        return self._count

    def add(self, session: Session, topic_filter: str, group: str = "") -> bool:
        """Subscribe `session` to `topic_filter` (in shared `group` if given); False if it already was."""
        validate_filter(topic_filter)
        node = self._roots.setdefault(session.project, _Node())
        levels = topic_filter.split(SEPARATOR)
        rest = levels[-1] == MULTI
        for level in levels[:-1] if rest else levels:
            node = node.children.setdefault(level, _Node())
        table = self._table(node, rest, group, create=True)
        assert table is not None
        if session.id in table:
            return False
        table[session.id] = session
        self._by_session.setdefault(session.id, {})[(topic_filter, group)] = session
        self._count += 1
        if self._count == 1 and self.on_change is not None:
            self.on_change(True)
        return True

    def remove(self, session: Session, topic_filter: str, group: str = "") -> bool:
        """Unsubscribe `session` from `topic_filter` (in `group`); False if it was not subscribed."""
        mine = self._by_session.get(session.id)
        if not mine or mine.pop((topic_filter, group), None) is None:
            return False
        if not mine:
            del self._by_session[session.id]
        self._count -= 1
        if not self._count and self.on_change is not None:
            self.on_change(False)
        root = self._roots.get(session.project)
        if root is None:
            return True
        levels = topic_filter.split(SEPARATOR)
        rest = levels[-1] == MULTI
        path = [root]
        for level in levels[:-1] if rest else levels:
            child = path[-1].children.get(level)
            if child is None:
                return True
            path.append(child)
        table = self._table(path[-1], rest, group, create=False)
        if table is not None:
            table.pop(session.id, None)
            if group and not table:
                (path[-1].rest_groups if rest else path[-1].exact_groups).pop(group, None)
        keys = levels[:-1] if rest else levels
        for i in range(len(path) - 1, 0, -1):  # prune empty branches
            if not path[i].empty():
                break
            del path[i - 1].children[keys[i - 1]]
        if root.empty():
            del self._roots[session.project]
        return True

    def discard_session(self, session: Session) -> int:
        """Remove every filter of `session` (it is gone); how many there were."""
        mine = self._by_session.get(session.id)
        if not mine:
            return 0
        keys = list(mine)
        for topic_filter, group in keys:
            self.remove(session, topic_filter, group)
        return len(keys)

    def filters(self, session: Session) -> list[tuple[str, str]]:
        """(filter, group) pairs `session` is subscribed with."""
        return list(self._by_session.get(session.id, ()))

    @staticmethod
    def _table(node: _Node, rest: bool, group: str, *, create: bool) -> dict[str, Session] | None:
        if not group:
            return node.rest if rest else node.exact
        groups = node.rest_groups if rest else node.exact_groups
        g = groups.get(group)
        if g is None:
            if not create:
                return None
            g = groups[group] = _Group()
        return g.members

    def match(self, project: str, channel: str, exclude: dict[str, Any] | None = None) -> dict[str, Session] | None:
        """Sessions with a filter matching `channel` (each once; one member per shared group), minus `exclude`'s ids."""
        root = self._roots.get(project)
        if root is None or not is_topic(channel):
            return None
        out: dict[str, Session] = {}
        groups: list[_Group] = []
        levels = channel.split(SEPARATOR)
        private = channel.startswith("$")
        nodes = [root]
        for i, level in enumerate(levels):
            following = []
            for node in nodes:
                if node.rest and not (private and i == 0):
                    out.update(node.rest)
                if node.rest_groups and not (private and i == 0):
                    groups.extend(node.rest_groups.values())
                children = node.children
                if children:
                    child = children.get(level)
                    if child is not None:
                        following.append(child)
                    if not (private and i == 0):
                        child = children.get(SINGLE)
                        if child is not None:
                            following.append(child)
            if not following:
                nodes = following
                break
            nodes = following
        for node in nodes:
            if node.exact:
                out.update(node.exact)
            if node.rest:  # `a/#` also matches `a`
                out.update(node.rest)
            if node.exact_groups:
                groups.extend(node.exact_groups.values())
            if node.rest_groups:
                groups.extend(node.rest_groups.values())
        for g in groups:
            picked = g.pick()
            if picked is not None:
                out[picked.id] = picked
        if exclude:
            for sid in exclude:
                out.pop(sid, None)
        return out or None

    def __iter__(self) -> Iterator[tuple[Session, str, str]]:
        for mine in self._by_session.values():
            for (topic_filter, group), session in mine.items():
                yield session, topic_filter, group
