"""Partner URLs may point only at public addresses, also through the IPv6 forms that embed an IPv4 address."""

from __future__ import annotations

import ipaddress

import pytest

from ocpi_hub.urlcheck import UnsafeUrlError, check_partner_url, is_public_address


@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("::", False),
        ("fe80::1", False),
        ("fc00::1", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a00:1", False),  # NAT64 of 10.0.0.1
        ("64:ff9b:1::808:808", False),  # local-use NAT64, whatever it embeds
        ("2002:7f00:1::", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::", False),  # 6to4 of 10.0.0.1
        ("::ffff:127.0.0.1", False),
        ("::ffff:10.0.0.1", False),
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("8.8.8.8", True),
        ("2001:4860:4860::8888", True),
        ("64:ff9b::808:808", True),  # NAT64 of 8.8.8.8
        ("2002:808:808::", True),
        ("::ffff:8.8.8.8", True),
    ],
)
def test_public_addresses(address: str, public: bool) -> None:
    assert is_public_address(ipaddress.ip_address(address)) is public


@pytest.mark.parametrize("host", ["127.0.0.1", "[::1]", "[64:ff9b::7f00:1]", "[2002:a00:1::]", "[::ffff:10.0.0.1]"])
async def test_a_literal_non_public_address_is_refused_and_named(host: str) -> None:
    with pytest.raises(UnsafeUrlError, match="non-public address") as refused:
        await check_partner_url(f"http://{host}:8080/ocpi/versions", allow_private=False)
    assert host.strip("[]") in str(refused.value)


async def test_a_name_of_a_non_public_address_is_refused_without_saying_what_it_resolved_to() -> None:
    with pytest.raises(UnsafeUrlError, match="points at a non-public address") as refused:
        await check_partner_url("http://localhost:8080/ocpi/versions", allow_private=False)
    assert "127.0.0.1" not in str(refused.value)
    assert "::1" not in str(refused.value)


async def test_public_addresses_and_allowed_private_ones_pass() -> None:
    await check_partner_url("https://8.8.8.8/ocpi/versions", allow_private=False)
    await check_partner_url("https://[64:ff9b::808:808]/ocpi/versions", allow_private=False)
    await check_partner_url("http://localhost:8080/ocpi/versions", allow_private=True)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://host:99999/", "not a valid URL .*Port out of range"),
        ("http://host:port/", "not a valid URL"),
        ("http://[::1/", "not a valid URL .*Invalid IPv6 URL"),
        ("ftp://8.8.8.8/", "not an http"),
        ("http:///path", "not an http"),
    ],
)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_malformed_urls_are_unsafe_whatever_is_allowed(url: str, reason: str, allow_private: bool) -> None:
    with pytest.raises(UnsafeUrlError, match=reason):
        await check_partner_url(url, allow_private=allow_private)
