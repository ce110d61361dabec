"""An assignment's SLA clock reads the same on the hand-off desk and in the digest (``sla.sla_clock``):
the hours left or past due to one decimal, "overdue" from the due moment on (the escalation's)."""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from jinja2 import ChoiceLoader, DictLoader

from leadscore.lifecycle.notify import Note, digest_messages
from leadscore.web.render import templates

NOW = 1_714_986_000_000  # 2024-05-06T09:00:00Z
HOUR = 3_600_000

# due (ms from NOW, None: no SLA) → the clock's text, by hand
CASES = [
    (0, "overdue by 0.0 h"),  # due this moment: the escalation takes it now
    (1, "0.0 h left to act"),
    (HOUR, "1.0 h left to act"),
    (25 * HOUR, "25.0 h left to act"),
    (-90 * 60_000, "overdue by 1.5 h"),
    (None, "no SLA"),
]


class _Viewer:
    csrf = "t"

    def can(self, permission: str) -> bool:
        return False


def _desk_cell(due_ms: int | None) -> str:
    """The SLA cell of a seller's one row on the desk page (``handoff.html``; the page's frame left out),
    its markup taken off."""
    row: dict[str, Any] = {
        "lead_id": 7, "first_name": "Ann", "last_name": None, "email": "ann@example.test", "company": None,
        "score": 70.0, "band": "warm", "reasons": [], "last_activity_ms": None, "due_ms": due_ms,
        "owner": None, "can_accept": False, "can_reject": False,
    }  # fmt: skip
    frame = DictLoader({"base.html": "{% block main %}{% endblock %}"})
    env = templates.env.overlay(loader=ChoiceLoader([frame, templates.env.loader]))  # type: ignore[list-item]
    desk = SimpleNamespace(mine=[row], mine_total=1, team=[], team_total=0, manager=False, pages=1)
    html = env.get_template("handoff.html").render(
        now=NOW, viewer=_Viewer(), lifecycle=True, desk=desk, stage="mql", stages=1, score_names=[]
    )
    cells = re.findall(r"<td[^>]*>(.*?)</td>", html.split('<tr data-lead="7">')[1], re.S)
    return re.sub(r"<[^>]+>", "", cells[3])  # score, reasons, last activity, SLA


@pytest.mark.parametrize(("due", "told"), CASES)
def test_the_desk_and_the_digest_write_the_same_sla_clock(due: int | None, told: str) -> None:
    due_ms = None if due is None else NOW + due
    note = Note(7, "Ann", None, 70.0, "warm", [], "http://x/leads/7", due_ms)
    notes = {"overdue": [note], "new": [], "waiting": []}
    mail, slack = digest_messages(notes, "2024-05-06", "http://x/handoff", NOW)
    assert f"- Ann (no company), score 70.0 (warm), {told}\n" in mail["body"]
    assert f"score 70.0 (warm), {told}\n" in slack["blocks"][1]["text"]["text"]
    assert _desk_cell(due_ms) == told
