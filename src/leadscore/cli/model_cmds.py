"""``leadscore validate`` and ``leadscore model publish|list|show|diff``."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from leadscore.cli.options import AsOf, Db, fmt_time, open_store, parse_as_of
from leadscore.cli.render import console
from leadscore.errors import ModelValidationError

if TYPE_CHECKING:
    from leadscore.model import ScoringModel

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
    db: Db = None,
) -> None:
    """Store the model as a new version, make it active, rescore every lead (recorded in history)."""
    from leadscore.model import dump_model
    from leadscore.scoring.pipeline import publish
    from leadscore.store.backtests import backtests_of_yaml

    model = load_or_exit(model_file)
    with open_store(db) as store:
        if require_backtest:
            with store.connect() as conn:
                if not backtests_of_yaml(conn, model.model, dump_model(model)):
                    console.print(
                        f"[red]error[/red] no backtest stored for {model_file}: run `leadscore backtest {model_file} --save` first",
                        highlight=False,
                    )
                    raise typer.Exit(1)
        version, count = publish(store, model, note=note, as_of=parse_as_of(as_of))
        console.print(
            f"published {version.label} (sha256 {version.sha256[:12]}); rescored {count} leads",
            highlight=False,
        )


@app.command("list")
def list_cmd(db: Db = None) -> None:
    """Every stored version; the active one is marked."""
    from leadscore.store.model_versions import list_versions

    with open_store(db) as store:
        with store.connect() as conn:
            versions = list_versions(conn)
        table = Table(title="Model versions")
        for col in ("", "version", "id", "created", "published", "sha256", "note"):
            table.add_column(col)
        for v in versions:
            table.add_row(
                "*" if v.active else "",
                v.label,
                str(v.id),
                fmt_time(v.created_ms),
                fmt_time(v.published_ms),
                v.sha256[:12],
                v.note,
            )
        console.print(table)


@app.command("show")
def show_cmd(ref: Annotated[str, typer.Argument(help="name@version, name, or id.")], db: Db = None) -> None:
    """Print a stored version's YAML."""
    from leadscore.store.model_versions import find_version

    with open_store(db) as store, store.connect() as conn:
        print(find_version(conn, ref).yaml, end="")


def _resolve(ref: str, db: str | None) -> tuple[str, ScoringModel]:
    from leadscore.model import loads_model
    from leadscore.store.model_versions import find_version

    path = Path(ref)
    if path.suffix in (".yaml", ".yml") and path.exists():
        return str(path), load_or_exit(path)
    with open_store(db) as store:
        with store.connect() as conn:
            version = find_version(conn, ref)
        return version.label, loads_model(version.yaml, version.label)


@app.command("diff")
def diff_cmd(
    old: Annotated[str, typer.Argument(help="Version (name@N, name, id) or YAML file.")],
    new: Annotated[str, typer.Argument(help="Version (name@N, name, id) or YAML file.")],
    db: Db = None,
) -> None:
    """What changed between two models: rules added, removed or changed, then the YAML diff."""
    from leadscore.model import dump_model
    from leadscore.model.diff import rule_changes

    old_label, old_model = _resolve(old, db)
    new_label, new_model = _resolve(new, db)
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
