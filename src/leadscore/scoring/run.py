"""Run the compiled model: (lead, as_of) targets → ledgers. The single entry to scoring for every caller."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import BigInteger, Connection, Integer, Select, column, literal, select, values

from leadscore.compile import Ledger, Sources, compile_model, read_ledger
from leadscore.model import ScoringModel, loads_model
from leadscore.store.model_versions import ModelVersion
from leadscore.store.schema import leads

POINTS_CHUNK = 5000


def now_ms() -> int:
    return int(time.time() * 1000)


@lru_cache(maxsize=32)
def model_of(yaml_text: str, label: str) -> ScoringModel:
    """Parse a stored model version once per process."""
    return loads_model(yaml_text, label)


@dataclass(frozen=True)
class Active:
    """A model ready to score: the parsed model and the version it came from (None for a draft file)."""

    model: ScoringModel
    version: ModelVersion | None = None

    @classmethod
    def of(cls, version: ModelVersion) -> Active:
        return cls(model_of(version.yaml, version.label), version)


def all_leads(as_of: int, lead_ids: Iterable[int] | None = None) -> Select[tuple[int, int]]:
    query = select(leads.c.id.label("lead_id"), literal(as_of, BigInteger).label("as_of"))
    if lead_ids is not None:
        query = query.where(leads.c.id.in_(list(lead_ids)))
    return query


def points(pairs: Sequence[tuple[int, int]]) -> Select[tuple[int, int]]:
    """Explicit (lead, as_of) pairs: history and backtests score many times per lead."""
    table = (
        values(column("lead_id", Integer), column("as_of", BigInteger), name="points")
        .data(list(pairs))
        .cte("points")
    )
    return select(table.c.lead_id, table.c.as_of)


def score(
    conn: Connection, model: ScoringModel, sources: Sources, targets: Select[tuple[int, int]]
) -> list[Ledger]:
    query = compile_model(model, sources, targets, engine=conn.dialect.name)
    if conn.dialect.name == "postgresql":
        # the wide aggregate's cost estimate switches JIT on, whose compilation costs more than it saves
        conn.exec_driver_sql("SET LOCAL jit = off")
    return [read_ledger(model, dict(row)) for row in conn.execute(query).mappings()]


def score_points(
    conn: Connection, model: ScoringModel, sources: Sources, pairs: Sequence[tuple[int, int]]
) -> list[Ledger]:
    out: list[Ledger] = []
    for start in range(0, len(pairs), POINTS_CHUNK):
        out.extend(score(conn, model, sources, points(pairs[start : start + POINTS_CHUNK])))
    return out
