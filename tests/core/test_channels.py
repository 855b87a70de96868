import pytest

from hub.core import ChannelRequired, ChannelTooLong, Hub, NamespaceNotFound, NamespaceOptions, Project, parse_channel
from hub.core.channels import channel_options

PROJECT = Project("p", "s", NamespaceOptions(), {"ns": NamespaceOptions(publish=True)}, max_channel_length=20)


def test_plain_channel_uses_project_options():
    name = parse_channel(PROJECT, "news")
    assert (name.namespace, name.private, name.users) == ("", False, None)
    assert name.options is PROJECT.options


def test_namespace_private_and_user_limited():
    name = parse_channel(PROJECT, "$ns:room#alice,bob")
    assert name.namespace == "ns" and name.private
    assert name.users == {"alice", "bob"}
    assert name.options.publish
    assert name.allows_user("alice") and not name.allows_user("carol")


@pytest.mark.parametrize("bad, error", [("", ChannelRequired), (None, ChannelRequired), (5, ChannelRequired),
                                        ("x" * 21, ChannelTooLong), ("nope:chan", NamespaceNotFound),
                                        ("$nope:chan", NamespaceNotFound)])
def test_bad_names(bad, error):
    with pytest.raises(error):
        parse_channel(PROJECT, bad)
    with pytest.raises(error):
        channel_options(PROJECT, bad)
    with pytest.raises(error):
        Hub([PROJECT]).options_of("p", bad)


@pytest.mark.parametrize("name", ["news", "$news", "ns:room", "$ns:room#alice,bob", ":x", "ns:a#b", "ns:"])
def test_channel_options_are_parse_channels(name):
    assert channel_options(PROJECT, name) is parse_channel(PROJECT, name).options
    assert Hub([PROJECT]).options_of("p", name) is parse_channel(PROJECT, name).options


def test_remembered_options_follow_a_reload():
    hub = Hub([PROJECT])
    assert hub.options_of("p", "ns:room").publish
    changed = Project("p", "s", NamespaceOptions(), {"ns": NamespaceOptions(publish=False)}, max_channel_length=20)
    hub.set_projects([changed])
    assert not hub.options_of("p", "ns:room").publish
    hub.set_projects([Project("p", "s", NamespaceOptions(), {}, max_channel_length=20)])
    with pytest.raises(NamespaceNotFound):
        hub.options_of("p", "ns:room")
