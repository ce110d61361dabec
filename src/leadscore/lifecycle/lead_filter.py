"""The one lead filter: what a user asked to see, validated, and the one selection of lead ids it means.

The dashboard's list, its count, the fit × engagement matrix and the CSV export, and the API's
``GET /v1/leads`` (list and export) all filter through ``LeadFilter.matches``, so a count, a page, a
matrix and an export of the same filter can never disagree. What each field means:

- ``band``, ``grade``, ``level``, ``min_score``, ``max_score``: the lead's current score, the range read on
  the score as every screen shows it, cut to one decimal (a lead that has
  no score matches none of them), of the named score ``score`` (the primary score when empty; a list
  shows that score's columns too: ``score_name``);
- ``source``: the ``lead_source`` attribute, equal ignoring case;
- ``company``: the account's name (else the lead's own company) contains the text, ignoring case;
- ``account``: the lead is a contact of the account with this id (the leads an account's pages count as
  its contacts: the accounts list's "its leads");
- ``stage``: the lead's current lifecycle stage; ``owner``: the seller of its assignment (the one a
  seller still has to act on, else its newest: the owner the desk and the lead page name);
- ``q``: the e-mail, the name ("first last"), or the company contains the text, ignoring case, or the
  text is the lead's id.

Empty fields do not filter; fields combine with AND.

Whoever withdrew tracking consent (``exportable`` is false) is in no list of people, whatever the fields:
the filter selects the people a list may show, so the dashboard's list, count, matrix and CSV and the API's
pages and exports all leave her out alike, and say how many they left out (``withdrawn``). She stays
reachable one at a time (her lead page, ``GET /v1/leads/{ref}``, ``leadscore privacy``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import Connection, Select, String, and_, cast, func, or_, select, true
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import FromClause
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from leadscore.compile.conditions import contains_like
from leadscore.compile.dialects import JsonBool, JsonText, LowerText, TextLike
from leadscore.compile.sources import lead_company
from leadscore.errors import InputError
from leadscore.model.text_case import fold_case, normalise_text
from leadscore.scoring.shown import cut
from leadscore.store.lifecycle_tables import current_seller, held_by
from leadscore.store.schema import ID_MAX, WITHDRAWN_SQL, accounts, lead_stages, leads, scores
from leadscore.store.score_names import check_name, named

BANDS = ("hot", "warm", "cold")
GRADES = ("A", "B", "C", "D")
LEVELS = (1, 2, 3, 4)
TEXT_FIELDS = ("q", "band", "grade", "source", "company", "stage", "owner", "score")
_CONTROL = {chr(c) for c in (*range(0x20), 0x7F)}


def lead_source(lead_attributes: ColumnElement[Any]) -> ColumnElement[Any]:
    """The ``lead_source`` attribute as text (the source filter and its choices)."""
    return JsonText(lead_attributes, ("lead_source",))


def current_owner(lead_id: ColumnElement[Any]) -> ColumnElement[Any]:
    """The seller of the lead's assignment (``current_assignment_id``: the one a seller still has to act
    on, else its newest), whom the desk and the lead page name; NULL when it was never assigned."""
    return current_seller(lead_id)


def exportable(lead_attributes: ColumnElement[Any]) -> ColumnElement[bool]:
    """Whether a lead may appear in an export: not when the person withdrew tracking consent."""
    return func.coalesce(JsonBool(lead_attributes, ("consent_tracking",)), true())


WITHDRAWN = "consent withdrawn (consent_tracking is false)"


class Withdrawn(FunctionElement[bool]):
    """``not exportable(attributes)``: the JSON value of ``consent_tracking`` is false. Written as
    ``store.schema.WITHDRAWN_SQL`` to the letter (the path a literal, not a parameter), the predicate of
    the partial index ``ix_leads_withdrawn``, so that each engine finds the few from the index instead of
    reading every lead's attributes."""

    # not Boolean: SQLite would test a Boolean-typed function "= 1", which no longer reads as the index's
    # predicate
    type = NullType()  # type: ignore[assignment]
    inherit_cache = True
    name = "withdrawn"


@compiles(Withdrawn)
def _withdrawn(element: Withdrawn, compiler: Any, **kw: Any) -> str:
    (attributes,) = element.clauses
    return WITHDRAWN_SQL[compiler.dialect.name].format(attributes=compiler.process(attributes, **kw))


def withdrawn_ids() -> Select[Any]:
    """The ids of the leads who withdrew tracking consent (not ``exportable``), from ``ix_leads_withdrawn``."""
    lead = leads.alias("withdrawn_leads")
    return select(lead.c.id).where(Withdrawn(lead.c.attributes))


def withheld(conn: Connection, lead_id: int) -> str | None:
    """Why nothing of the lead may leave the system now (a webhook naming her, a mail to her), or None:
    ``WITHDRAWN`` when she is not ``exportable``. A lead no longer stored (erased) has nothing to withhold."""
    query = select(exportable(leads.c.attributes)).where(leads.c.id == lead_id)
    found = conn.execute(query).scalar()
    return WITHDRAWN if found is not None and not found else None


class LeadFilter(BaseModel):
    """What the user asked to see; empty fields do not filter (text fields are "" when unset)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    q: str = Field("", max_length=200, description="search e-mail, name, company, or a lead id")
    band: Literal["", "hot", "warm", "cold"] = ""
    grade: Literal["", "A", "B", "C", "D"] = ""
    level: int | None = Field(None, ge=1, le=4, description="engagement level 1–4")
    min_score: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    max_score: float | None = Field(None, ge=0, le=100, allow_inf_nan=False)
    source: str = Field("", max_length=200, description="lead_source attribute, any case")
    company: str = Field("", max_length=200, description="company name contains")
    account: int | None = Field(
        None, ge=1, le=ID_MAX, description="the id of the account the lead is a contact of"
    )
    stage: str = Field("", max_length=63)
    owner: str = Field("", max_length=63, description="seller of the lead's current assignment")
    score: str = Field("", max_length=63, description="the named score read (default: the primary score)")

    @field_validator("*", mode="before")
    @classmethod
    def _unset(cls, value: Any, info: Any) -> Any:
        """A form's empty field and a missing one mean the same: no filter on it."""
        if isinstance(value, str):
            if _CONTROL.intersection(value):
                raise ValueError("control characters (such as NUL) are not allowed")
            value = normalise_text(value.strip())  # in NFC, as the values it is compared with are kept
        if value is None or value == "":
            return "" if info.field_name in TEXT_FIELDS else None
        return value

    @field_validator("score")
    @classmethod
    def _score_name(cls, value: str) -> str:
        try:
            return check_name(value) if value else value
        except InputError as exc:  # a form's field error, not a malformed file
            raise ValueError(str(exc)) from None

    @property
    def score_name(self) -> str | None:
        """The named score the filter reads (None: the primary score)."""
        return self.score or None

    @model_validator(mode="after")
    def _range(self) -> LeadFilter:
        if self.min_score is not None and self.max_score is not None and self.min_score > self.max_score:
            raise ValueError(f"min_score {self.min_score:g} is above max_score {self.max_score:g}")
        return self

    def params(self, **changes: Any) -> dict[str, Any]:
        """The filter as query parameters (empty ones left out), with ``changes`` applied."""
        values = {**self.model_dump(), **changes}
        return {k: v for k, v in values.items() if v not in ("", None)}

    @property
    def active(self) -> bool:
        return bool(self.params())

    @property
    def needs_score(self) -> bool:
        """Whether only scored leads can match."""
        return any(
            (
                self.band,
                self.grade,
                self.level is not None,
                self.min_score is not None,
                self.max_score is not None,
            )
        )

    def without_cell(self) -> LeadFilter:
        """The filter less its grade and level (the matrix shows every cell under the rest)."""
        return self.model_copy(update={"grade": "", "level": None})

    def lead_ids(self, who: Literal["listed", "all", "withdrawn"] = "listed") -> Select[Any]:
        """The one selection of the ids of every lead the filter matches: the people a list may show
        (``exportable``); ``all``: whoever withdrew too, ``withdrawn``: only they (the few a list leaves out,
        read from their short list: the two count a list apart, so that no count reads every lead's
        attributes)."""
        # aliases of their own, so that the selection never correlates with a query it is nested in
        lead = leads.alias("filter_leads")
        score = scores.alias("filter_scores")
        account = accounts.alias("filter_accounts")
        stage = lead_stages.alias("filter_stages")
        # start from the score index when only scored leads can match (every score has its lead)
        joined: FromClause = score if self.needs_score else lead
        lead_id = score.c.lead_id if self.needs_score else lead.c.id
        reads_lead = bool(self.company or self.q or self.source or self.account is not None)
        if self.needs_score and (reads_lead or who == "listed"):  # consent is the lead's attribute
            joined = joined.join(lead, lead.c.id == lead_id)
        tests: list[ColumnElement[bool]] = []
        if who == "listed":
            tests.append(exportable(lead.c.attributes))
        elif who == "withdrawn":
            tests.append(lead_id.in_(withdrawn_ids()))
        if self.needs_score:
            tests.append(named(score.c.score_name, self.score_name))
            tests.extend(self._score_tests(score))
        company = lead_company(lead, account)
        if self.company or self.q:
            joined = joined.outerjoin(account, account.c.id == lead.c.account_id)
        if self.company:
            tests.append(TextLike(company, contains_like(fold_case(self.company))))
        if self.account is not None:
            tests.append(lead.c.account_id == self.account)
        if self.source:
            unicode = not self.source.isascii()
            tests.append(LowerText(lead_source(lead.c.attributes), unicode) == fold_case(self.source))
        if self.stage:
            joined = joined.join(stage, stage.c.lead_id == lead_id)
            tests.append(stage.c.stage == self.stage)
        if self.owner:
            tests.append(held_by(lead_id, self.owner))  # current_owner, as a semi-join
        if self.q:
            pattern = contains_like(fold_case(self.q))
            name = func.coalesce(lead.c.first_name, "") + " " + func.coalesce(lead.c.last_name, "")
            tests.append(
                or_(
                    TextLike(lead.c.email, pattern),
                    TextLike(name, pattern),
                    TextLike(company, pattern),
                    cast(lead_id, String) == self.q,
                )
            )
        return select(lead_id.label("lead_id")).select_from(joined).where(*tests)

    def _score_tests(self, score: FromClause) -> list[ColumnElement[bool]]:
        """The tests on a row of the named score: band, grade, level, score range."""
        tests: list[ColumnElement[bool]] = []
        for value, col in ((self.band, score.c.band), (self.grade, score.c.grade)):
            if value:
                tests.append(col == value)
        if self.level is not None:
            tests.append(score.c.level == self.level)
        # the score as every screen shows it (``cut`` to one decimal): "up to 87.9" holds a lead shown at 87.9
        # (87.96), "from 49.95" none shown at 49.9 (49.99); a score is kept to a millionth, so ``cut(s) >= t``
        # exactly when ``s >= t`` for a bound ``t`` of one decimal
        if self.min_score is not None:
            tests.append(score.c.score >= -cut(-self.min_score, 1))  # 49.95 → 50.0
        if self.max_score is not None:
            # 87.9 (or 87.95) → below 88.0
            tests.append(score.c.score < float(Decimal(repr(cut(self.max_score, 1))) + Decimal("0.1")))
        return tests

    def matches(self, lead_id: ColumnElement[Any], listed: bool = True) -> ColumnElement[bool]:
        """A condition on a query's lead id column: the lead is one the filter selects (never one who
        withdrew consent, but with ``listed`` False: a count that takes the few apart, ``lead_ids``)."""
        if not self.active:  # the few who withdrew, not every other lead: a short list to test against
            return lead_id.not_in(withdrawn_ids()) if listed else true()
        return lead_id.in_(self.lead_ids("listed" if listed else "all"))

    def withdrawn(self, conn: Connection) -> int:
        """How many leads the filter would select but for their withdrawn consent: what a list left out."""
        query = select(func.count()).select_from(self.lead_ids("withdrawn").subquery())
        return int(conn.execute(query).scalar_one())

    def matches_score(self, score: FromClause, listed: bool = True) -> ColumnElement[bool]:
        """``matches(score.c.lead_id)`` for a query over rows of ``scores`` of the filter's named score: the
        score tests read the row itself (a lead has one row per score name), the rest of the filter selects
        lead ids as ``matches`` does; so the list can walk the score index in its sort order."""
        rest = self.model_copy(
            update={"band": "", "grade": "", "level": None, "min_score": None, "max_score": None, "score": ""}
        )
        return and_(true(), *self._score_tests(score), rest.matches(score.c.lead_id, listed))


class LeadFilterParams(LeadFilter):
    """The filter read from a query string, where other parameters (sort, order, page) sit beside it."""

    model_config = ConfigDict(frozen=True, extra="ignore")
