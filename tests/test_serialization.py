"""Space-filling-curve codes: bit-identical to Pointcept's fixtures, and curve properties."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from pcseg.models.serialization import (
    ORDERS,
    encode,
    hilbert_code,
    serialization_depth,
    serialize,
    sort_codes,
    z_code,
)

FIXTURE = Path(__file__).parent / "fixtures" / "ptv3" / "serialization.pt"


@pytest.fixture(scope="module")
def golden() -> dict:
    return torch.load(FIXTURE, weights_only=True)


@pytest.mark.parametrize("which", ["large", "small"])
def test_codes_equal_pointcept(golden: dict, which: str) -> None:
    g = golden if which == "large" else golden["small"]
    assert g["codes"], "fixture holds no codes"
    for depth, by_order in g["codes"].items():
        for order, expected in by_order.items():
            code = encode(g["grid_coord"], g["batch"], depth, order)
            assert code.dtype == torch.int64
            assert torch.equal(code, expected), (which, depth, order)


@pytest.mark.parametrize("which", ["large", "small"])
def test_serialize_equals_point_serialization(golden: dict, which: str) -> None:
    g = golden if which == "large" else golden["small"]
    p = g["point"]
    ser = serialize(g["grid_coord"], g["batch"], list(g["orders"]))
    assert ser.depth == p["serialized_depth"]
    assert torch.equal(ser.code, p["serialized_code"])
    assert torch.equal(ser.order, p["serialized_order"])
    assert torch.equal(ser.inverse, p["serialized_inverse"])


def test_depth_rules(golden: dict) -> None:
    gc = golden["grid_coord"]
    assert int(gc.max()) == 1023
    assert serialization_depth(gc) == 11  # main: bit_length(max + 1)
    assert serialization_depth(gc, legacy=True) == 10  # <= v1.5.x: bit_length(max)
    assert serialization_depth(torch.tensor([[0, 5, 6]])) == 3
    assert serialization_depth(torch.tensor([[0, 5, 6]]), legacy=True) == 3


def test_hilbert_visits_neighbouring_cells() -> None:
    """On a full 2^d cube, consecutive Hilbert codes are face neighbours (the curve property)."""
    for depth in (1, 2, 3):
        side = 1 << depth
        ax = torch.arange(side)
        cube = torch.cartesian_prod(ax, ax, ax)
        code = hilbert_code(cube, depth)
        assert torch.equal(torch.sort(code).values, torch.arange(side**3))  # a bijection
        walk = cube[torch.argsort(code)]
        steps = (walk[1:] - walk[:-1]).abs().sum(1)
        assert torch.all(steps == 1)
        assert code[0] == 0  # starts at the origin


def test_z_code_bit_layout_and_trans() -> None:
    xyz = torch.tensor([[1, 0, 0], [0, 1, 0], [0, 0, 1], [2, 0, 0], [5, 3, 6]])
    assert z_code(xyz, 3)[:4].tolist() == [4, 2, 1, 32]
    # x=101, y=011, z=110 -> per bit i the triple (x_i y_i z_i), high bit first: 101 011 110
    assert z_code(xyz, 3)[4].item() == 0b101_011_110
    swapped = xyz[:, [1, 0, 2]]
    assert torch.equal(encode(xyz, None, 3, "z-trans"), z_code(swapped, 3))
    assert torch.equal(encode(xyz, None, 3, "hilbert-trans"), hilbert_code(swapped, 3))


def test_batch_in_high_bits_and_sorting() -> None:
    g = torch.Generator().manual_seed(0)
    gc = torch.randint(0, 16, (200, 3), generator=g)
    batch = torch.randint(0, 3, (200,), generator=g)
    for order in ORDERS:
        code = encode(gc, batch, 4, order)
        assert torch.equal(code >> 12, batch)
    ser = serialize(gc, batch)
    for k in range(len(ORDERS)):
        assert torch.all(batch[ser.order[k]].diff() >= 0)  # scenes stay contiguous
        assert torch.equal(ser.order[k][ser.inverse[k]], torch.arange(200))


def test_sort_codes_is_stable() -> None:
    code = torch.tensor([[3, 1, 3, 1, 2]])
    order, inverse = sort_codes(code)
    assert order.tolist() == [[1, 3, 4, 0, 2]]
    assert inverse.tolist() == [[3, 0, 4, 1, 2]]


def test_rejects_bad_arguments() -> None:
    gc = torch.zeros(2, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="order"):
        encode(gc, None, 4, "peano")
    with pytest.raises(ValueError, match="depth"):
        encode(gc, None, 17, "z")
    with pytest.raises(ValueError, match="overflow"):
        serialize(gc, torch.tensor([0, 40000]), depth=16)
