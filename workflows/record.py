"""Plain record classes for what every command builds at start (issue 14, start-up).

``@record`` stands in for ``@dataclass`` on the classes every ``track advance`` and ``track
show`` imports: the definition model, the loader's names, the engine's and the guards' records.
``dataclasses`` writes and compiles (``exec``) five or six methods per class at import, about
0.6 ms a class here, 23 classes on the advance path: as much as the rest of our own imports.
A record gets the same behaviour from shared, already compiled functions: ``__init__`` with
the declared defaults (``field(default_factory=...)`` included) and ``__post_init__``,
``__repr__``, ``__eq__`` (same class, fields in order), and for ``frozen=True`` ``__hash__``
and no assignment, exactly as a dataclass with those options. ``replace``, ``fields`` and
``asdict`` are this module's functions, not ``dataclasses``'. Type checkers see a dataclass
(``dataclass_transform``).

Classes must not inherit fields from one another (none does), and annotations are read as
written (the modules use ``from __future__ import annotations``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, dataclass_transform, overload

T = TypeVar("T")
R = TypeVar("R")

#: Set on a record class: its field names in declared order, their defaults, its factories,
#: and the names as a set.
_FIELDS = "__record_fields__"


class FrozenRecordError(AttributeError):
    """Assigning to (or deleting) a field of a frozen record, as ``FrozenInstanceError``."""


class _Factory:
    __slots__ = ("make",)

    def __init__(self, make: Callable[[], Any]) -> None:
        self.make = make


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is made per instance (``dataclasses.field(default_factory=)``)."""
    return _Factory(default_factory)  # type: ignore[return-value]


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    names, defaults, factories, keys = getattr(type(self), _FIELDS)
    if not args and kwargs.keys() == keys:
        # Every field by keyword (as the engine builds a move, once per advance): nothing to
        # check or default, so the general path's loops are skipped.
        self.__dict__.update(kwargs)
        post = getattr(self, "__post_init__", None)
        if post is not None:
            post()
        return
    if len(args) > len(names):
        raise TypeError(
            f"{type(self).__name__}() takes {len(names)} positional arguments"
            f" but {len(args)} were given"
        )
    values = dict(zip(names, args, strict=False))
    for key, value in kwargs.items():
        if key not in defaults and key not in names:
            raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}")
        if key in values:
            raise TypeError(f"{type(self).__name__}() got multiple values for argument {key!r}")
        values[key] = value
    state = self.__dict__
    for name in names:
        if name in values:
            state[name] = values[name]
        elif name in factories:
            state[name] = factories[name]()
        elif name in defaults:
            state[name] = defaults[name]
        else:
            raise TypeError(f"{type(self).__name__}() missing required argument: {name!r}")
    post_init = getattr(self, "__post_init__", None)
    if post_init is not None:
        post_init()


def _values(self: Any) -> tuple[Any, ...]:
    return tuple(self.__dict__[name] for name in getattr(type(self), _FIELDS)[0])


def _repr(self: Any) -> str:
    names = getattr(type(self), _FIELDS)[0]
    inner = ", ".join(f"{name}={self.__dict__[name]!r}" for name in names)
    return f"{type(self).__qualname__}({inner})"


def _eq(self: Any, other: object) -> Any:
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self: Any) -> int:
    return hash(_values(self))


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _frozen_delattr(self: Any, name: str) -> None:
    raise FrozenRecordError(f"cannot delete field {name!r}")


def _build(cls: type[R], frozen: bool) -> type[R]:
    names: list[str] = []
    defaults: dict[str, Any] = {}
    factories: dict[str, Callable[[], Any]] = {}
    own = vars(cls)
    for name, annotation in own.get("__annotations__", {}).items():
        if str(annotation).startswith(("ClassVar", "typing.ClassVar")):
            continue
        names.append(name)
        if name in own:
            value = own[name]
            if isinstance(value, _Factory):
                factories[name] = value.make
                delattr(cls, name)  # as a dataclass: no class attribute for a factory field
            else:
                defaults[name] = value
        elif defaults or factories:
            raise TypeError(f"non-default argument {name!r} follows default argument")
    methods: dict[str, Any] = {
        _FIELDS: (tuple(names), defaults, factories, frozenset(names)),
        "__init__": _init,
    }
    if "__repr__" not in own:
        methods["__repr__"] = _repr
    if "__eq__" not in own:
        methods["__eq__"] = _eq
    if own.get("__hash__") is None:
        # As a dataclass with eq=True: hashable by value when frozen, unhashable otherwise.
        methods["__hash__"] = _hash if frozen else None
    if frozen:
        methods["__setattr__"] = _frozen_setattr
        methods["__delattr__"] = _frozen_delattr
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


@overload
@dataclass_transform(field_specifiers=(field,))
def record(cls: type[R], /) -> type[R]: ...


@overload
def record(*, frozen: bool = False) -> Callable[[type[R]], type[R]]: ...


def record(cls: type[R] | None = None, /, *, frozen: bool = False) -> Any:
    """The class as a record: ``@record`` or ``@record(frozen=True)``, as ``@dataclass``."""
    if cls is None:
        return lambda c: _build(c, frozen)
    return _build(cls, frozen)


def fields(obj: Any) -> tuple[str, ...]:
    """The field names of a record (class or instance), in declared order."""
    found: tuple[str, ...] = getattr(obj, _FIELDS)[0]
    return found


def is_record(obj: Any) -> bool:
    """Whether ``obj`` is a record instance (not a record class)."""
    return hasattr(type(obj), _FIELDS) and not isinstance(obj, type)


def asdict(obj: Any) -> dict[str, Any]:
    """A record's fields as a dict; records, lists, tuples and dicts inside are copied as
    ``dataclasses.asdict`` copies them."""
    return {name: _plain(getattr(obj, name)) for name in fields(obj)}


def _plain(value: Any) -> Any:
    if is_record(value):
        return asdict(value)
    if isinstance(value, list | tuple):
        return type(value)(_plain(v) for v in value)
    if isinstance(value, dict):
        return type(value)((_plain(k), _plain(v)) for k, v in value.items())
    return value


def replace(obj: T, /, **changes: Any) -> T:
    """A copy of a record with some fields changed (``dataclasses.replace``)."""
    for name in fields(obj):
        if name not in changes:
            changes[name] = getattr(obj, name)
    return type(obj)(**changes)
