import pytest

from hub.core import ChannelRequired, ChannelTooLong, NamespaceNotFound, NamespaceOptions, Project, parse_channel

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
