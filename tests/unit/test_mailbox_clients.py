"""Whose connection it is, for the mailbox's cap on connections from one client."""

from __future__ import annotations

import pytest

from intake.mailbox import client_of


@pytest.mark.parametrize(
    ("peername", "client"),
    [
        (("192.0.2.7", 50123), "192.0.2.7"),
        (("2001:db8:1:2:aaaa:bbbb:cccc:dddd", 50123, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2::9", 50123, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:192.0.2.7", 50123, 0, 0), "192.0.2.7"),
        (("fe80::1%eth0", 50123, 0, 2), "fe80::/64"),
        (None, ""),
        ((), ""),
        ("/run/mailbox.sock", ""),
    ],
)
def test_a_client_is_its_address_or_its_ipv6_64(peername: object, client: str) -> None:
    assert client_of(peername) == client
