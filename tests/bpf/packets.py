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
