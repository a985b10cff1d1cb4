"""IP and CIDR parsing with the leniency of k8s.io/utils/net, plus the address-class checks.

Kubernetes parses "legacy" IP fields (pod IPs, cluster IPs, NetworkPolicy CIDRs, ...) with
ParseIPSloppy/ParseCIDRSloppy: IPv4 octets may carry leading zeros and a CIDR may have host bits
set. StrictIPCIDRValidation is alpha and off in 1.35, so those values must keep validating.
"""

from __future__ import annotations

import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

IP_MSG = "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"
CIDR_MSG = "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)"


def _parse_ipv4_sloppy(value: str) -> ipaddress.IPv4Address | None:
    parts = value.split(".")
    if len(parts) != 4:
        return None
    octets: list[int] = []
    for part in parts:
        # Decimal digits only; leading zeros are accepted (and read as decimal) like Go's fork.
        if not part or not part.isascii() or not part.isdigit():
            return None
        n = int(part)
        if n > 255:
            return None
        octets.append(n)
    return ipaddress.IPv4Address(bytes(octets))


def parse_ip(value: str) -> IPAddress | None:
    """The address, or None if ParseIPSloppy would reject it."""
    if ":" in value:
        if "%" in value:  # zones are not IPs to Go's ParseIP
            return None
        try:
            return ipaddress.IPv6Address(value)
        except ValueError:
            return None
    return _parse_ipv4_sloppy(value)


def unmap(ip: IPAddress) -> IPAddress:
    """Go treats IPv4-mapped IPv6 addresses as IPv4 everywhere (To4() != nil)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_ipv4(ip: IPAddress) -> bool:
    return isinstance(unmap(ip), ipaddress.IPv4Address)


def parse_cidr(value: str) -> IPNetwork | None:
    """The network (host bits cleared), or None if ParseCIDRSloppy would reject it."""
    addr, sep, mask = value.partition("/")
    if not sep or not mask.isascii() or not mask.isdigit():
        return None
    ip = parse_ip(addr)
    if ip is None:
        return None
    bits = int(mask)
    if isinstance(ip, ipaddress.IPv4Address):
        if bits > 32:
            return None
        return ipaddress.IPv4Network((ip, bits), strict=False)
    if bits > 128:
        return None
    return ipaddress.IPv6Network((ip, bits), strict=False)


def special_ip_problems(ip: IPAddress, text: str) -> list[str]:
    """Why an address may not be an endpoint or external IP (ValidateNonSpecialIP)."""
    ip = unmap(ip)
    problems: list[str] = []
    if ip.is_unspecified:
        problems.append(f"may not be unspecified ({text})")
    if ip.is_loopback:
        problems.append("may not be in the loopback range (127.0.0.0/8, ::1/128)")
    if ip.is_link_local:
        problems.append("may not be in the link-local range (169.254.0.0/16, fe80::/10)")
    if _is_link_local_multicast(ip):
        problems.append("may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)")
    return problems


def _is_link_local_multicast(ip: IPAddress) -> bool:
    packed = ip.packed
    if isinstance(ip, ipaddress.IPv4Address):
        return packed[0] == 224 and packed[1] == 0 and packed[2] == 0
    # Go: ip[0] == 0xff && ip[1]&0x0f == 0x02 (any flags, link-local scope).
    return packed[0] == 0xFF and packed[1] & 0x0F == 0x02


def is_dual_stack(ips: list[IPAddress]) -> bool:
    """True when the list holds at least one IPv4 and one IPv6 address."""
    families = {is_ipv4(ip) for ip in ips}
    return families == {True, False}
