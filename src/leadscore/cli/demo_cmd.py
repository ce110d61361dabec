"""``leadscore demo``: build a demo database, score it, show the hottest leads and why."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from leadscore.cli.options import fmt_time
from leadscore.cli.render import console, reasons
from leadscore.scoring.shown import cut_text

DEMO_DB = "leadscore-demo.db"


def _has_leads(db: str) -> bool:
    from sqlalchemy import func, inspect, select
    from sqlalchemy.engine import make_url

    from leadscore.store import Store
    from leadscore.store.engine import normalise_url
    from leadscore.store.schema import leads

    url = make_url(normalise_url(db))
    if url.get_backend_name() == "sqlite" and (not url.database or not Path(url.database).exists()):
        return False
    store = Store.from_url(db, migrate_schema=False)
    try:
        if not inspect(store.engine).has_table("leads"):
            return False
        with store.connect() as conn:
            return bool(conn.execute(select(func.count()).select_from(leads)).scalar())
    finally:
        store.dispose()


def demo(
    leads_n: Annotated[
        int, typer.Option("--leads", min=10, max=200_000, help="How many leads to generate.")
    ] = 500,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same data.")] = 42,
    db: Annotated[str, typer.Option("--db", help="Where to build the demo (SQLite path or URL).")] = DEMO_DB,
    top: Annotated[int, typer.Option(help="How many of the hottest leads to show.")] = 10,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace a database that already holds leads (its data is lost)."),
    ] = False,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then open the dashboard on the demo data (until Ctrl-C).")
    ] = False,
    port: Annotated[int, typer.Option(help="Dashboard port with --serve.")] = 8000,
) -> None:
    """Generate a realistic B2B data set, score it with the example model and show the hottest leads."""
    from leadscore.demo import run_demo

    if db != DEMO_DB and not overwrite and _has_leads(db):
        console.print(
            f"[red]error[/red] {db} already holds leads; pass --overwrite to replace them with demo data"
        )
        raise typer.Exit(1)
    console.print(f"Building a demo with {leads_n} leads (seed {seed}) in {db} ...", highlight=False)
    result = run_demo(db, leads=leads_n, seed=seed, top=top)
    g = result.generated
    console.print(
        f"{g.companies} companies, {g.leads} leads, {g.events} events ({fmt_time(g.first_ms)[:10]} to "
        f"{fmt_time(g.now_ms)[:10]}), {g.outcomes} outcomes; model {result.model}; built in {result.seconds:.1f} s",
        highlight=False,
    )
    console.print(
        "bands: " + ", ".join(f"{band} {result.bands.get(band, 0)}" for band in ("hot", "warm", "cold")),
        highlight=False,
    )
    table = Table(title=f"The {len(result.hottest)} hottest leads as of {fmt_time(result.as_of_ms)} UTC")
    for col in ("lead", "who", "company", "score", "fit", "eng.", "grade", "band", "top reasons"):
        table.add_column(col, justify="right" if col in ("score", "fit", "eng.") else "left")
    for lead in result.hottest:
        table.add_row(
            str(lead.lead_id),
            f"{lead.name}\n{lead.job_title or ''}",
            lead.company or "",
            cut_text(lead.score),
            cut_text(lead.fit_score, 0),
            cut_text(lead.engagement_score, 0),
            f"{lead.grade}{lead.level}",
            lead.band,
            reasons(lead.lines),
        )
    console.print(table)
    if result.hottest:
        first = result.hottest[0]
        console.print(
            f"Next: leadscore explain {first.lead_id} --db {db}    leadscore history {first.lead_id} --db {db}",
            highlight=False,
        )
    if serve:
        _serve(db, port)


def _demo_users(conn: Any) -> list[tuple[str, str, str]]:
    """(role, e-mail, name) of the demo's users: an admin, a marketer, and as sales the first seller of
    the seller who owns the most leads ready for handoff (so "Assigned to me" lists leads), and that
    seller's team manager (also sales: a manager sees and acts on the team's leads)."""
    from leadscore.scoring.pipeline import active_model

    users = [
        ("admin", "admin@demo.example", "Demo admin"),
        ("marketing", "marketing@demo.example", "Demo marketing"),
    ]
    active = active_model(conn)
    lifecycle = active.model.lifecycle if active is not None else None
    if lifecycle is None or not lifecycle.teams:
        return [*users, ("sales", "sales@demo.example", "Demo sales")]
    from collections import Counter

    from leadscore.lifecycle.reports import ready_for_handoff

    owned = Counter(str(r["seller"]) for r in ready_for_handoff(conn, lifecycle) if r.get("seller"))
    ranked = [
        (owned.get(s.id, 0), -i, t, s)
        for i, (t, s) in enumerate((t, s) for t in lifecycle.teams for s in t.sellers)
    ]
    _, _, team, seller = max(ranked, key=lambda x: (x[0], x[1]))
    users.append(("sales", seller.email, seller.name))
    if team.manager is not None:
        users.append(("sales", team.manager.email, f"{team.manager.name} (manager, {team.name})"))
    return users


def _serve(db: str, port: int) -> None:
    """Demo users (one per role, generated passwords printed once), a lifecycle round, then the server."""
    import secrets

    import uvicorn

    from leadscore.api import create_app
    from leadscore.auth.passwords import hash_password
    from leadscore.lifecycle.runner import run_round
    from leadscore.scoring.run import now_ms
    from leadscore.settings import Settings
    from leadscore.store import Store
    from leadscore.store.users import add_user

    store = Store.from_url(db)
    try:
        run_round(store, Settings(), deliver=False)  # place the demo leads in their stages
        console.print(f"Dashboard: http://127.0.0.1:{port}/ — sign in as:", highlight=False)
        with store.begin() as conn:
            for role, email, name in _demo_users(conn):
                password = secrets.token_urlsafe(12)
                add_user(conn, email, name, role, hash_password(password), now_ms())
                console.print(f"  {role:<9} {email}  password {password}", highlight=False)
    finally:
        store.dispose()
    uvicorn.run(create_app(Settings(database_url=db)), host="127.0.0.1", port=port, log_level="warning")
