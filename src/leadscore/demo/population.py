"""Companies and their contacts, drawn from a seeded random generator.

Every contact carries a hidden ``fit`` in [0, 1]: the generator's own idea of how good a buyer the contact
is. It drives behaviour and outcomes; the scoring model only sees attributes, so learning has something
real (and not quite the model's rules) to find.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from leadscore.demo import catalog

CHANNEL_MIX = (("company", 0.78), ("free_mail", 0.14), ("student", 0.05), ("competitor", 0.03))


@dataclass(frozen=True)
class Company:
    domain: str
    name: str
    industry: str
    employees: int
    annual_revenue: int
    country: str
    target: bool = False
    competitor: bool = False

    @property
    def good_industry(self) -> bool:
        return any(name == self.industry and good for name, _, good in catalog.INDUSTRIES)

    def traits(self) -> dict[str, Any]:
        return {
            "industry": self.industry,
            "employees": self.employees,
            "annual_revenue": self.annual_revenue,
            "country": self.country,
        }


@dataclass(frozen=True)
class Contact:
    key: str  # the demo's user id
    email: str
    first_name: str
    last_name: str
    title: str
    seniority: str
    buyer_role: bool
    channel: str  # company | free_mail | student | competitor
    company: Company | None
    company_name: str
    lead_source: str
    fit: float = field(default=0.0)

    def traits(self) -> dict[str, Any]:
        return {
            "email": self.email,
            "firstName": self.first_name,
            "lastName": self.last_name,
            "title": self.title,
            "seniority": self.seniority,
            "company": self.company_name,
            "leadSource": self.lead_source,
        }


def _pick(rng: random.Random, items: tuple[tuple[Any, ...], ...], weight_index: int) -> tuple[Any, ...]:
    return rng.choices(items, weights=[it[weight_index] for it in items])[0]


def _employees(rng: random.Random) -> int:
    # log-uniform from 2 to 20,000: as many 10-person shops as 1,000-person firms
    return max(2, round(10 ** rng.uniform(0.3, 4.3)))


def _company(
    rng: random.Random, domain: str, name: str, *, target: bool = False, competitor: bool = False
) -> Company:
    industry = str(_pick(rng, catalog.INDUSTRIES, 1)[0])
    employees = _employees(rng)
    if target:  # sales picked these accounts for a reason
        industry = rng.choice(("Software", "Internet", "Marketing & Advertising", "Financial Services"))
        employees = rng.randint(80, 3000)
    if competitor:
        industry, employees = "Software", rng.randint(40, 400)
    revenue = int(round(employees * rng.uniform(80_000, 250_000), -5))
    return Company(
        domain, name, industry, employees, revenue, rng.choice(catalog.COUNTRIES), target, competitor
    )


def companies(
    rng: random.Random, count: int, targets: list[tuple[str, str]], competitors: list[str]
) -> list[Company]:
    """``count`` prospect companies, about one in seven from the target-account list, plus the competitors."""
    n_targets = min(len(targets), max(1, count // 7))
    out = [_company(rng, d, n, target=True) for d, n in rng.sample(targets, n_targets)]
    used = {c.domain for c in out} | {d for d, _ in targets} | set(competitors)
    while len(out) < count:
        stem = rng.choice(catalog.NAME_HEADS) + rng.choice(catalog.NAME_TAILS)
        domain = stem + rng.choice(catalog.TLDS)
        if domain in used:
            continue
        used.add(domain)
        out.append(_company(rng, domain, stem.capitalize() + rng.choice(catalog.NAME_SUFFIXES)))
    out.extend(_company(rng, d, d.split(".")[0].capitalize(), competitor=True) for d in competitors)
    return out


def _fit(title_buyer: bool, seniority: str, company: Company | None, channel: str) -> float:
    """The generator's hidden truth about how likely this contact is to buy, in [0, 1]."""
    if channel in ("student", "competitor"):
        return 0.0
    score = 0.3 if title_buyer else 0.05
    score += {"c_level": 0.2, "vp": 0.2, "director": 0.15, "manager": 0.1}.get(seniority, 0.0)
    if company is not None:
        score += 0.2 if 50 <= company.employees <= 1000 else 0.1 if company.employees > 1000 else 0.0
        score += 0.15 if company.good_industry else 0.0
        score += 0.15 if company.target else 0.0
    else:  # free mail: some are consultants and founders, most are private persons
        score *= 0.5
    return min(1.0, score)


def contacts(rng: random.Random, count: int, pool: list[Company], free_mail: list[str]) -> list[Contact]:
    """``count`` contacts; companies get a heavy-tailed number of them (most one or two, a few many)."""
    prospects = [c for c in pool if not c.competitor]
    competitors = [c for c in pool if c.competitor]
    # Zipf-like weights: the first companies drawn collect most contacts
    weights = [1.0 / (i + 1) ** 0.8 for i in range(len(prospects))]
    out: list[Contact] = []
    seen: set[str] = set()
    while len(out) < count:
        first, last = rng.choice(catalog.FIRST_NAMES), rng.choice(catalog.LAST_NAMES)
        channel = rng.choices([c for c, _ in CHANNEL_MIX], weights=[w for _, w in CHANNEL_MIX])[0]
        company: Company | None = None
        if channel == "competitor" and competitors:
            company = rng.choice(competitors)
        elif channel in ("company", "free_mail"):
            company = rng.choices(prospects, weights=weights)[0]
        else:
            channel = "student"
        if channel == "student":
            title, seniority, buyer = rng.choice(catalog.STUDENT_TITLES), "student", False
        else:
            title, seniority, buyer, _ = _pick(rng, catalog.TITLES, 3)
        local = f"{first}.{last}".lower().replace("ü", "ue")
        if channel == "student":
            domain = rng.choice([*catalog.UNIVERSITY_DOMAINS, *free_mail[:3]])
        elif channel == "free_mail":
            domain = rng.choice(free_mail)
            local += str(rng.randint(1, 99))
        else:
            assert company is not None
            domain = company.domain
        email = f"{local}@{domain}"
        if email in seen:
            continue
        seen.add(email)
        account = company if channel in ("company", "competitor") else None
        out.append(
            Contact(
                key=f"demo-{len(out) + 1:06d}",
                email=email,
                first_name=first,
                last_name=last,
                title=str(title),
                seniority=str(seniority),
                buyer_role=bool(buyer),
                channel=channel,
                company=account,
                company_name=company.name if company else "",
                lead_source=rng.choice(catalog.LEAD_SOURCES),
                fit=_fit(bool(buyer), str(seniority), account, channel),
            )
        )
    return out
