"""Which address a listener advertises (api/netaddr.py)."""

from kubelite.api import netaddr


def test_loopback_binds_advertise_loopback():
    assert netaddr.advertised("127.0.0.1") == "127.0.0.1"
    assert netaddr.advertised("localhost") == "127.0.0.1"
    assert netaddr.advertised("::1") == "::1"


def test_a_specific_bind_is_advertised_as_it_is():
    assert netaddr.advertised("192.168.77.10") == "192.168.77.10"


def test_every_address_advertises_the_default_route_address(monkeypatch):
    monkeypatch.setattr(netaddr, "route_address", lambda destination="": "192.0.2.7")
    assert netaddr.advertised("0.0.0.0") == "192.0.2.7"
    monkeypatch.setattr(netaddr, "route_address", lambda destination="": "127.0.0.1")
    assert netaddr.advertised("0.0.0.0") == "127.0.0.1"


def test_route_address_to_loopback_is_loopback():
    assert netaddr.route_address("127.0.0.1") == "127.0.0.1"
