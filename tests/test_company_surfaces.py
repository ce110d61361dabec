"""A lead's company is one definition (``compile.sources.lead_company``: its account's name, else the
company it gave) on every surface: the rules, the lead filter's search, the dashboard's list and export,
and ``leadscore score``. ann gave the company Initech and is in the account Acme: everywhere she is at
Acme. Before, ``leadscore score`` listed her at Initech while the dashboard listed her at Acme."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from leadscore.cli.main import app as cli
from leadscore.ingest.segment import normalise, parse_time
from leadscore.lifecycle.lead_filter import LeadFilter
from leadscore.model import loads_model
from leadscore.scoring.pipeline import ingest, publish
from leadscore.store import Store
from leadscore.web.data.leadlist import count, export_rows

T0 = parse_time("2024-05-01T00:00:00Z", "t0")
MODEL = """
model: company
fit:
  - {id: acme, name: Works at Acme, when: {attribute: company, equals: Acme}, points: 30}
"""


def test_every_surface_shows_the_accounts_name_as_the_company(store: Store) -> None:
    publish(store, loads_model(MODEL), as_of=T0)
    identify = {"type": "identify", "userId": "ann", "messageId": "m1", "timestamp": T0,
                "traits": {"company": "Initech", "email": "ann@initech.example"}}  # fmt: skip
    group = {"type": "group", "userId": "ann", "messageId": "m2", "timestamp": T0, "groupId": "acme",
             "traits": {"name": "Acme", "domain": "acme.example"}}  # fmt: skip
    ingest(store, [normalise(m, received_ms=T0) for m in (identify, group)], source="test", as_of=T0)
    result = CliRunner().invoke(cli, ["score", "--db", str(store.url), "--as-of", "2024-05-02T00:00:00Z",
                                      "--format", "json"])  # fmt: skip
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output)
    with store.connect() as conn:
        [listed] = list(export_rows(conn, LeadFilter(), "score", "desc"))
        at_acme, at_initech = (
            count(conn, LeadFilter(company="acme")),
            count(conn, LeadFilter(company="initech")),
        )

    # the fit rule reads Acme: 30 fit points of 100, weighted 0.5 by the default scale
    assert row["fit_score"] == 30.0 and row["score"] == 15.0
    assert row["company"] == listed["company"] == "Acme"
    assert (at_acme, at_initech) == (1, 0)
