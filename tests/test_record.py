"""workflows.record: records behave as the dataclasses they replace (issue 14, start-up)."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from workflows import record as rec


@rec.record(frozen=True)
class Frozen:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class FrozenDC:
    name: str
    size: int = 0
    tags: tuple[str, ...] = ()


@rec.record
class Mutable:
    items: list[int] = rec.field(default_factory=list)
    seen: int = 0

    def __post_init__(self) -> None:
        self.seen += 1


def test_record_init_repr_eq_hash_as_a_dataclass() -> None:
    """A frozen record takes the same arguments and has the same repr, equality and hash as
    the frozen dataclass with the same fields."""
    cases: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        (("a",), {}),
        (("a", 2), {}),
        (("a",), {"tags": ("x",)}),
        # every field by keyword, in and out of declared order (the init's short path)
        ((), {"name": "a", "size": 2, "tags": ("x",)}),
        ((), {"tags": ("x",), "size": 2, "name": "a"}),
    ]
    for args, kwargs in cases:
        r, d = Frozen(*args, **kwargs), FrozenDC(*args, **kwargs)
        assert repr(r) == repr(d).replace("FrozenDC", "Frozen")
        assert hash(r) == hash(d)
        assert r == Frozen(*args, **kwargs) and r != Frozen("other")
    assert Frozen("a") != FrozenDC("a")  # type: ignore[comparison-overlap]  # another class is never equal, as a dataclass


def test_record_init_refuses_what_a_dataclass_refuses() -> None:
    """Missing, unknown, repeated and surplus arguments raise TypeError."""
    bad: list[tuple[tuple[Any, ...], dict[str, Any]]] = [
        ((), {}),
        (("a",), {"colour": 1}),
        (("a",), {"name": "b"}),
        (("a", 1, (), 4), {}),
    ]
    for args, kwargs in bad:
        with pytest.raises(TypeError):
            Frozen(*args, **kwargs)
        with pytest.raises(TypeError):
            FrozenDC(*args, **kwargs)


def test_record_frozen_refuses_assignment() -> None:
    """A frozen record's fields cannot be assigned or deleted (an AttributeError)."""
    r = Frozen("a")
    with pytest.raises(AttributeError):
        r.name = "b"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del r.name
    assert r.name == "a"


def test_record_mutable_factory_post_init_and_no_hash() -> None:
    """A mutable record makes each factory default anew, runs __post_init__, may be
    assigned, and is unhashable (as a dataclass with eq and not frozen)."""
    a, b = Mutable(), Mutable()
    a.items.append(1)
    assert b.items == [] and a.seen == 1
    a.seen = 5
    assert a.seen == 5
    with pytest.raises(TypeError):
        hash(a)
    assert "items" not in vars(Mutable)


def test_record_replace_fields_asdict() -> None:
    """replace, fields and asdict answer as dataclasses' functions do."""
    r = Frozen("a", 1, ("x",))
    assert rec.replace(r, size=3) == Frozen("a", 3, ("x",))
    assert rec.fields(r) == ("name", "size", "tags")
    assert rec.asdict(r) == dataclasses.asdict(FrozenDC("a", 1, ("x",)))
    assert rec.is_record(r) and not rec.is_record(Frozen)


def test_digest_sha256_hex_is_hashlibs() -> None:
    """workflows.digest gives hashlib's SHA-256 for any input (empty, short, long, binary)."""
    import hashlib
    import os

    from workflows.digest import sha256_hex

    for data in (b"", b"abc", "æøå".encode(), os.urandom(300), os.urandom(100_000)):
        assert sha256_hex(data) == hashlib.sha256(data).hexdigest()


def test_record_all_keywords_run_post_init_and_factories_stay_per_instance() -> None:
    """Every field given by keyword still runs ``__post_init__``; a record built so shares no
    value with another."""
    a, b = Mutable(items=[1], seen=0), Mutable(items=[2], seen=5)
    assert (a.items, a.seen, b.items, b.seen) == ([1], 1, [2], 6)
    assert rec.asdict(a) == {"items": [1], "seen": 1}
