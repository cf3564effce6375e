"""engine.coerce_field: a wrong value names its field, in English by key and type, in Danish
by label (the name is built only when a value is wrong: issue 14, item 1b)."""

from __future__ import annotations

import pytest

from onboarding import engine
from onboarding.errors import InputError
from workflows.model import FieldDef

CASES = [
    (FieldDef("go_live", "date", "Idriftsættelse"), "31-02-2021", "is not a date"),
    (FieldDef("go_live", "date", "Idriftsættelse"), "2021-03-01T10:00", "without a time"),
    (FieldDef("users", "integer", "Brugere"), "mange", "is not a whole number"),
    (FieldDef("signed", "boolean", "Underskrevet"), "måske", "is not yes/no"),
    (FieldDef("kind", "choice", "Slags", ("a", "b")), "c", "is not one of a, b"),
    (FieldDef("note", "text", "Note"), "x" * 4001, "at most 4000 characters"),
]


@pytest.mark.parametrize(
    ("fdef", "raw", "says"), CASES, ids=[c[0].type + "-" + c[2] for c in CASES]
)
def test_field_values_wrong_value_names_the_field(fdef: FieldDef, raw: str, says: str) -> None:
    """A wrong value of each type is refused with the field's key and type (English) and its
    label (Danish)."""
    with pytest.raises(InputError) as caught:
        engine.coerce_field(None, fdef, raw)  # type: ignore[arg-type]  # no registry type here
    english, danish = caught.value.say("en"), caught.value.say("da")
    assert f"field {fdef.name} ({fdef.type})" in english and says in english, english
    assert f"“{fdef.label}”" in danish and fdef.name not in danish.replace(fdef.label, ""), danish


def test_field_values_right_values_are_normalised() -> None:
    """Right values come back in their stored form."""
    assert engine.coerce_field(None, CASES[0][0], "01.03.2021") == "2021-03-01"  # type: ignore[arg-type]
    assert engine.coerce_field(None, CASES[2][0], " 12 ") == 12  # type: ignore[arg-type]
    assert engine.coerce_field(None, CASES[3][0], "Ja") is True  # type: ignore[arg-type]
