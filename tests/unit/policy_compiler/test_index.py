"""CidrTable's indexes answer exactly what a scan of every prefix and block would."""

from __future__ import annotations

import random
from ipaddress import IPv4Network

from weir.identity import Reserved
from weir_policy_compiler.index import CidrTable
from weir_policy_compiler.plan import PolicyRef
from weir_policy_compiler.selectors import BlockSelector


def _net(rng: random.Random) -> IPv4Network:
    length = rng.choice([0, 8, 16, 23, 24, 28, 30, 32, 32, 32])
    address = rng.choice([0x0A000000, 0x0A010000, 0xC6120000]) + rng.randrange(1 << 12)
    return IPv4Network((address, length), strict=False)


def _block(rng: random.Random) -> BlockSelector:
    cidr = _net(rng)
    excepts = tuple(
        n for n in (_net(rng) for _ in range(rng.randrange(3))) if n.subnet_of(cidr) and n != cidr
    )
    return BlockSelector(cidr=cidr, excepts=excepts)


def test_allowed_and_users_covering_agree_with_a_scan_through_every_change() -> None:
    rng = random.Random(7)
    table = CidrTable()
    pairs: dict[tuple[IPv4Network, int], int] = {}
    users: dict[BlockSelector, set[PolicyRef]] = {}
    blocks = [_block(rng) for _ in range(40)]
    for step in range(1500):
        roll = rng.random()
        if roll < 0.45:
            net = _net(rng)
            pair = (net, (1 << 24) | (int(net.network_address) % 97))
            table.add(*pair)
            pairs[pair] = pairs.get(pair, 0) + 1
        elif roll < 0.65 and pairs:
            pair = rng.choice(sorted(pairs, key=str))
            table.remove(*pair)
            pairs[pair] -= 1
            if not pairs[pair]:
                del pairs[pair]
        elif roll < 0.85:
            block, user = rng.choice(blocks), ("x", f"p{rng.randrange(4)}")
            table.acquire(block, user)
            users.setdefault(block, set()).add(user)
        elif users:
            block = rng.choice(sorted(users, key=str))
            user = rng.choice(sorted(users[block]))
            table.release(block, user)
            users[block].discard(user)
            if not users[block]:
                del users[block]
        for block in rng.sample(blocks, 3):
            want = {i for (net, i) in pairs if block.matches(net)}
            if block.cidr.prefixlen == 0:
                want.add(int(Reserved.WORLD))
            assert table.allowed(block) == want, (step, block)
        probe = _net(rng)
        want_users = {u for b, us in users.items() if b.overlaps(probe) for u in us}
        assert table.users_covering(probe) == want_users, (step, probe)
