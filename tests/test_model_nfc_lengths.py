"""A model's literal and an event rule's name are bounded as they are compared, in NFC (``model.text_case``):
a few letters are longer in NFC (U+FB2C, a Hebrew presentation form, is three characters), so a bound
checked on the text as written let a literal through at three times its limit, and an event name that no
stored event's name (at most 500 characters, ``events.name``) can ever equal."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadscore.model.conditions import Compare
from leadscore.model.rules import EventMatch

EXPANDS = "\ufb2c"  # three characters in NFC


def test_a_literal_longer_than_the_limit_in_nfc_is_refused() -> None:
    assert Compare.model_validate({"attribute": "title", "equals": EXPANDS * 666}).value == (
        "\u05e9\u05bc\u05c1" * 666  # 1,998 characters: within the 2,000
    )
    with pytest.raises(ValidationError, match="text value is 2001 characters long; at most 2000"):
        Compare.model_validate({"attribute": "title", "equals": EXPANDS * 667})


def test_an_event_name_longer_than_its_column_in_nfc_is_refused() -> None:
    assert EventMatch(type="track", name=EXPANDS * 166).name == "\u05e9\u05bc\u05c1" * 166  # 498
    with pytest.raises(ValidationError, match="at most 500 characters"):
        EventMatch(type="track", name=EXPANDS * 167)  # 501 in NFC
