"""``leadscore validate`` and ``leadscore model publish|list|show|diff|compare|promote|rollback|stop-shadow|retire``."""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from leadscore.cli.options import AsOf, Db, ScoreName, fmt_time, open_store, parse_as_of
from leadscore.cli.render import console
from leadscore.errors import ModelValidationError

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from leadscore.model import ScoringModel
    from leadscore.store import Store
    from leadscore.store.model_versions import ModelVersion

app = typer.Typer(help="Model versions: publish, list, show, diff.", no_args_is_help=True)


def load_or_exit(path: Path) -> ScoringModel:
    from leadscore.model import load_model

    try:
        return load_model(path)
    except ModelValidationError as exc:
        for problem in exc.problems:
            console.print(f"[red]error[/red] {problem}", highlight=False, soft_wrap=True)
        console.print(f"{len(exc.problems)} problem(s) in {path}", highlight=False)
        raise typer.Exit(1) from None


def validate(models: Annotated[list[Path], typer.Argument(help="Model YAML files.")]) -> None:
    """Check model files; report every problem with file:line:column and rule id."""
    from leadscore.model import load_model

    failed = 0
    for path in models:
        try:
            model = load_model(path)
        except ModelValidationError as exc:
            failed += 1
            for problem in exc.problems:
                console.print(f"[red]error[/red] {problem}", highlight=False, soft_wrap=True)
            console.print(f"{path}: {len(exc.problems)} problem(s)", highlight=False)
            continue
        console.print(
            f"{path}: ok — model {model.model!r}, {len(model.fit)} fit and {len(model.engagement)} engagement rules",
            highlight=False,
        )
    if failed:
        raise typer.Exit(1)


@app.command("publish")
def publish_cmd(
    model_file: Annotated[Path, typer.Argument(help="Model YAML to publish.")],
    note: Annotated[str, typer.Option(help="Why this version.")] = "",
    as_of: AsOf = None,
    require_backtest: Annotated[
        bool,
        typer.Option(
            "--require-backtest", help="Refuse unless `leadscore backtest --save` stored one for it."
        ),
    ] = False,
    shadow: Annotated[
        bool,
        typer.Option(
            "--shadow",
            help="Publish as a shadow: scored beside the active version on live events, with no lifecycle actions.",
        ),
    ] = False,
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Store the model as a new version, make it active, rescore every lead (recorded in history).

    With --score NAME it is a version of that named score (a new name adds a score beside the others;
    only that score is rescored). With --shadow it is scored beside the active version instead (see
    `leadscore model compare`).
    """
    from leadscore.model.source import read_stored_text
    from leadscore.scoring.pipeline import publish
    from leadscore.store.backtests import backtests_of_yaml

    model = load_or_exit(model_file)
    text = read_stored_text(model_file)  # the author's text, comments and all (lists from CSV inlined)
    with open_store(db) as store:
        if require_backtest:
            with store.connect() as conn:
                if not backtests_of_yaml(conn, model.model, text):
                    console.print(
                        f"[red]error[/red] no backtest stored for {model_file}: run `leadscore backtest {model_file} --save` first",
                        highlight=False,
                    )
                    raise typer.Exit(1)
        if shadow:
            from leadscore.scoring.shadow import publish_shadow

            version, count = publish_shadow(
                store, model, text=text, note=note, as_of=parse_as_of(as_of), score_name=score_name
            )
            console.print(f"published {version.label} as a shadow; scored {count} leads beside the active version",
                          highlight=False)  # fmt: skip
            return
        version, count = publish(
            store, model, text=text, note=note, as_of=parse_as_of(as_of), score_name=score_name
        )
        console.print(
            f"published {version.label} (sha256 {version.sha256[:12]}) as the score {version.score_name!r}; "
            f"rescored {count} leads",
            highlight=False,
        )
        _warn_unpublished(store)


def _warn_unpublished(store: Store) -> None:
    """Warn of every score an active lifecycle names that no model is published as."""
    from leadscore.lifecycle.score_stages import unpublished_scores
    from leadscore.scoring.pipeline import active_models
    from leadscore.store.score_names import live_scores

    with store.connect() as conn:
        names = {s.name for s in live_scores(conn)}
        lifecycles = [a.model.lifecycle for a in active_models(conn) if a.model.lifecycle is not None]
    for lifecycle in lifecycles:
        for warning in unpublished_scores(lifecycle, names):
            console.print(f"[yellow]warning[/yellow] {warning}", highlight=False)


@app.command("list")
def list_cmd(score_name: ScoreName = None, db: Db = None) -> None:
    """Every stored version (of one score with --score); each score's active one is marked."""
    from leadscore.store.model_versions import list_versions
    from leadscore.store.score_names import list_scores, resolve
    from leadscore.store.shadows import shadow_versions

    with open_store(db) as store:
        with store.connect() as conn:
            versions = list_versions(conn, None if score_name is None else resolve(conn, score_name))
            shadows = shadow_versions(conn)
            retired = [
                s.name for s in list_scores(conn) if s.retired and s.name in {v.score_name for v in versions}
            ]
        table = Table(title="Model versions (* active, s shadow)")
        for col in ("", "score", "version", "id", "created", "published", "sha256", "note"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                "*" if v.active else "s" if v.id in shadows else "",
                v.score_name,
                v.label,
                str(v.id),
                fmt_time(v.created_ms),
                fmt_time(v.published_ms),
                v.sha256[:12],
                v.note,
            )
        console.print(table)
        for name in retired:
            console.print(f"the score {name!r} is retired: none of its versions is active, nothing scores it",
                          highlight=False)  # fmt: skip


@app.command("show")
def show_cmd(
    ref: Annotated[
        str, typer.Argument(help="name@version, name, id, or active (the active version of --score).")
    ] = "active",
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """Print a stored version's YAML (default: the active version of the score, the primary unless named)."""
    with open_store(db) as store, store.connect() as conn:
        print(_version(conn, ref, score_name).yaml, end="")


def _version(conn: Connection, ref: str, score_name: str | None) -> ModelVersion:
    """A version by reference; ``active`` is the score's active version; with a score named, a version
    of another score is refused."""
    from leadscore.errors import LeadscoreError
    from leadscore.store.model_versions import active_version, find_version
    from leadscore.store.score_names import resolve

    if ref == "active":
        return active_version(conn, None if score_name is None else resolve(conn, score_name))
    version = find_version(conn, ref)
    if score_name is not None and version.score_name != score_name:
        raise LeadscoreError(
            f"{version.label} is a version of the score {version.score_name!r}, not {score_name!r}"
        )
    return version


def _resolve(ref: str, db: str | None, score_name: str | None = None) -> tuple[str, ScoringModel]:
    from leadscore.model import loads_model

    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return str(path), load_or_exit(path)
    with open_store(db) as store:
        with store.connect() as conn:
            version = _version(conn, ref, score_name)
        return version.label, loads_model(version.yaml, version.label, stored=True)


@app.command("diff")
def diff_cmd(
    old: Annotated[str, typer.Argument(help="Version (name@N, name, id, active) or YAML file.")],
    new: Annotated[str, typer.Argument(help="Version (name@N, name, id, active) or YAML file.")],
    score_name: ScoreName = None,
    db: Db = None,
) -> None:
    """What changed between two models: rules added, removed or changed, then the YAML diff (``active``:
    the active version of --score)."""
    from leadscore.model import dump_model
    from leadscore.model.diff import rule_changes

    old_label, old_model = _resolve(old, db, score_name)
    new_label, new_model = _resolve(new, db, score_name)
    changes = rule_changes(old_model, new_model)
    if not changes:
        console.print("no differences")
        return
    table = Table(title=f"{old_label} → {new_label}")
    for col in ("change", "rule", "detail"):
        table.add_column(col)
    for change in changes:
        table.add_row(*change)
    console.print(table)
    diff = difflib.unified_diff(
        dump_model(old_model).splitlines(),
        dump_model(new_model).splitlines(),
        old_label,
        new_label,
        lineterm="",
    )
    print("\n".join(diff))


Ref = Annotated[str, typer.Argument(help="name@version, name, or id.")]


def _activate(
    ref: str, action: str, db: str | None, as_of: str | None, score_name: str | None = None
) -> None:
    from leadscore.scoring.pipeline import activate_version

    with open_store(db) as store:
        with store.connect() as conn:
            version = _version(conn, ref, score_name)
        version, count = activate_version(store, version.id, action=action, as_of=parse_as_of(as_of))
        console.print(
            f"{action} {version.label} (score {version.score_name!r}); rescored {count} leads with it",
            highlight=False,
        )


@app.command("promote")
def promote_cmd(ref: Ref, as_of: AsOf = None, score_name: ScoreName = None, db: Db = None) -> None:
    """Make a version (a shadow, or any stored one) the active one of its score and rescore that score."""
    _activate(ref, "promoted", db, as_of, score_name)


@app.command("rollback")
def rollback_cmd(ref: Ref, as_of: AsOf = None, score_name: ScoreName = None, db: Db = None) -> None:
    """Go back to an earlier version of a score: activate it and restore that score by rescoring every
    lead with it (--score: refuse a version of another score)."""
    _activate(ref, "rolled back", db, as_of, score_name)


@app.command("retire")
def retire_cmd(
    score_name: Annotated[
        str, typer.Option("--score", help="The named score to retire (never the primary).")
    ],
    db: Db = None,
) -> None:
    """Stop scoring a named score (a product line dropped): no event, clock tick or rescoring computes it
    and no picker offers it; its scores, history and versions are kept (read with --score). Refused for the
    primary and while the active lifecycle names it. Publishing or rolling back a version brings it back."""
    from leadscore.lifecycle.retire import retire_score

    with open_store(db) as store:
        version = retire_score(store, score_name)
    console.print(
        f"retired the score {version.score_name!r} ({version.label}): it is no longer scored; its scores and "
        f"history are kept (`leadscore model rollback {version.label} --score {version.score_name}` brings it back)",
        highlight=False,
    )


@app.command("stop-shadow")
def stop_shadow_cmd(ref: Ref, db: Db = None) -> None:
    """Stop scoring a version in shadow (its shadow scores are dropped)."""
    from leadscore.scoring.shadow import stop_shadow
    from leadscore.store.model_versions import find_version

    with open_store(db) as store:
        with store.connect() as conn:
            version = find_version(conn, ref)
        stop_shadow(store, version.id)
        console.print(f"{version.label} is no longer scored in shadow", highlight=False)


@app.command("compare")
def compare_cmd(
    ref: Ref,
    outcome: Annotated[
        str, typer.Option("--outcome", help="Outcome the replay since the start counts.")
    ] = "sql",
    horizon_days: Annotated[int, typer.Option("--horizon-days", min=1, help="Days an outcome counts.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
    db: Db = None,
) -> None:
    """A shadow beside the active version on the same leads: scores, MQLs, and replayed since its start."""
    from leadscore.learn.labels import DAY_MS
    from leadscore.learn.shadow_compare import compare
    from leadscore.scoring.run import now_ms
    from leadscore.store.model_versions import find_version

    with open_store(db) as store, store.connect() as conn:
        version = find_version(conn, ref)
        cmp = compare(conn, store.sources(), version.id, outcome=outcome,
                      horizon_ms=horizon_days * DAY_MS, now_ms=now_ms())  # fmt: skip
    if as_json:
        print(json.dumps(cmp.as_dict(), indent=2, default=str))
        return
    console.print(f"{cmp.shadow} (shadow since {fmt_time(cmp.started_ms)}) beside {cmp.active} on {cmp.leads} leads",
                  highlight=False)  # fmt: skip
    if cmp.leads:
        console.print(
            f"mean score {cmp.mean_active:.1f} → {cmp.mean_shadow:.1f}, mean difference {cmp.mean_abs_difference:.1f}; "
            f"MQLs now (thresholds {cmp.active_threshold:g} and {cmp.shadow_threshold:g}): both {cmp.mql_both}, "
            f"only the active {cmp.mql_only_active}, only the shadow {cmp.mql_only_shadow}",
            highlight=False,
        )
    bt = cmp.since_start
    if bt is not None and bt.baseline is not None:
        console.print(
            f"since the start, replayed: MQLs {bt.baseline.mqls} → {bt.candidate.mqls}, converted "
            f"{bt.baseline.converted} → {bt.candidate.converted} ({outcome} within {horizon_days} days)",
            highlight=False,
        )
