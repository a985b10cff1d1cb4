"""Crafted frames for BPF_PROG_TEST_RUN: Ethernet + IPv4 + ICMP echo or UDP."""

from __future__ import annotations

import ipaddress
import struct


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes) -> bytes:
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        1,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def ethernet(payload: bytes, ethertype: int = 0x0800) -> bytes:
    return (
        b"\x0a\x58\x0a\xf4\x01\x03"
        + b"\x0a\x58\x0a\xf4\x01\x02"
        + struct.pack("!H", ethertype)
        + payload
    )


def icmp_echo(src: str, dst: str, size: int = 56) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, 7, 1) + bytes(size)
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ethernet(ipv4(src, dst, 1, body))


def arp_request() -> bytes:
    return ethernet(bytes(28), ethertype=0x0806)


TCP_FIN, TCP_SYN, TCP_RST, TCP_ACK = 0x01, 0x02, 0x04, 0x10


def ipv4_frag(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1,
              offset: int = 0, more: bool = False) -> bytes:  # fmt: skip
    """An IPv4 header (and payload) with explicit fragment fields; `offset` in 8-byte units."""
    flags = (0x2000 if more else 0) | (offset & 0x1FFF)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,
        0,
        20 + len(payload),
        ident,
        flags,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def tcp(src: str, dst: str, sport: int, dport: int, flags: int = TCP_SYN,
        payload: bytes = b"") -> bytes:  # fmt: skip
    header = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, flags, 65535, 0, 0)
    return ethernet(ipv4(src, dst, 6, header + payload))


def udp(src: str, dst: str, sport: int, dport: int, payload: bytes = b"x") -> bytes:
    header = struct.pack("!HHHH", sport, dport, 8 + len(payload), 0)
    return ethernet(ipv4(src, dst, 17, header + payload))


def sctp(src: str, dst: str, sport: int, dport: int) -> bytes:
    header = struct.pack("!HHII", sport, dport, 0, 0)  # ports, verification tag, checksum
    return ethernet(ipv4(src, dst, 132, header))


def icmp(src: str, dst: str, kind: int, ident: int = 7, body: bytes = bytes(8)) -> bytes:
    message = struct.pack("!BBHHH", kind, 0, 0, ident, 1) + body
    message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
    return ethernet(ipv4(src, dst, 1, message))


def icmp_error(src: str, dst: str, quoted: bytes, kind: int = 3, code: int = 3) -> bytes:
    """An ICMP error from `src` to `dst` quoting `quoted` (an IP packet: header + 8 bytes)."""
    message = struct.pack("!BBHI", kind, code, 0, 0) + quoted
    message = message[:2] + struct.pack("!H", checksum(message)) + message[4:]
    return ethernet(ipv4(src, dst, 1, message))


def ip_of(frame: bytes) -> bytes:
    """The IP packet inside an Ethernet frame."""
    return frame[14:]


def truncated_tcp(src: str, dst: str) -> bytes:
    """An IPv4 header that says TCP, followed by only 2 bytes of it."""
    return ethernet(ipv4(src, dst, 6, b"\x00\x50"))
