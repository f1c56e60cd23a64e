"""Nova's ``addresses`` read into a server's fixed and floating addresses (pure: the real-OpenStack contract
tests in tests/integration/openstack cover the provider against Keystone, Nova and Placement)."""

from __future__ import annotations

from cloudctl.compute.providers.openstack import addresses_of


def test_addresses_come_from_novas_addresses_fixed_and_floating_v4_and_v6() -> None:
    # Nova's GET /servers/{id} shape: network name → ports' addresses, a floating IP listed with its fixed one.
    addresses = {
        "gov-public": [
            {"version": 4, "addr": "10.192.3.17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
            {"version": 6, "addr": "2001:DB8:0:0::17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
            {"version": 4, "addr": "59.110.8.21", "OS-EXT-IPS:type": "floating",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:01"},
        ],
        "gov-storage": [
            {"version": 4, "addr": "10.210.0.5", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:02"},
            # The same address twice (a second port on the same subnet seen through two networks): kept once.
            {"version": 4, "addr": "10.192.3.17", "OS-EXT-IPS:type": "fixed",
             "OS-EXT-IPS-MAC:mac_addr": "fa:16:3e:5d:2a:03"},
        ],
    }
    assert addresses_of(addresses) == (("10.192.3.17", "2001:db8::17", "59.110.8.21", "10.210.0.5"),
                                       ("59.110.8.21",))


def test_a_server_on_no_network_or_with_unusable_entries_has_no_addresses() -> None:
    assert addresses_of(None) == ((), ())
    assert addresses_of({}) == ((), ())  # "networks": "none"
    assert addresses_of({"gov-public": [{"version": 4, "addr": ""}, None, {"addr": "not-an-ip"}],
                         "gov-mgmt": None}) == ((), ())
