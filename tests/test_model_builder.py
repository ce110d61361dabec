"""The model's text is its source of truth (comments and order survive publishing, ``model show`` and the
builder's edits), validation speaks the author's words at the line at fault, and the rule builder's
pickers, live counts and distribution read a hand-counted population."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from builder_population import COMMENT_LINES, MODEL, populate
from leadscore.api import create_app
from leadscore.auth.passwords import hash_password
from leadscore.cli.main import app as cli
from leadscore.errors import ModelValidationError
from leadscore.model import load_model, loads_model
from leadscore.model.source import read_stored_text, remove_rule, set_list, set_rule, stored_text
from leadscore.settings import Settings
from leadscore.store import Store
from leadscore.store.model_versions import active_version
from leadscore.store.users import add_user
from live_server import serving
from web_support import PASSWORD, signed_in

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/model.yaml"))
DEMO = ROOT / "src" / "leadscore" / "demo" / "b2b_saas.yaml"


def comments(text: str) -> list[str]:
    """Every line that holds a comment (a whole-line comment or one after a value)."""
    return [line for line in text.splitlines() if re.search(r"(^|\s)#", line)]


# --- the text as the source of truth ---------------------------------------------------------------


@pytest.mark.parametrize("path", [*EXAMPLES, DEMO], ids=lambda p: p.parent.name if p != DEMO else "demo")
def test_stored_text_keeps_every_line_but_a_csv_lists(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    stored = stored_text(text, path.parent)
    assert loads_model(stored) == load_model(path)
    assert comments(stored) == comments(text)
    if "csv:" not in text:
        assert stored == text
    else:  # the b2b model's target-account list: only its csv line goes, its values come inline
        removed = [line for line in text.splitlines() if line not in stored.splitlines()]
        assert removed == ["    csv: lists/target_accounts.csv"]


def test_cli_publish_and_show_keep_the_comments(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    path = ROOT / "examples" / "b2b_saas" / "model.yaml"
    text = path.read_text(encoding="utf-8")
    assert len(comments(text)) >= 17  # the issue counted 17 lost comment lines
    published = CliRunner().invoke(cli, ["model", "publish", str(path), "--db", db])
    assert published.exit_code == 0, published.output
    shown = CliRunner().invoke(cli, ["model", "show", "b2b_saas", "--db", db])
    assert shown.exit_code == 0, shown.output
    assert comments(shown.output) == comments(text)
    assert shown.output == read_stored_text(path)


def test_a_backtested_file_is_the_version_require_backtest_finds(tmp_path: Path) -> None:
    db = str(tmp_path / "bt.db")
    path = ROOT / "examples" / "linda" / "model.yaml"
    runner = CliRunner()
    assert runner.invoke(cli, ["model", "publish", str(path), "--db", db]).exit_code == 0
    refused = runner.invoke(cli, ["model", "publish", str(path), "--db", db, "--require-backtest"])
    # the same text is the same version, already stored and active: no backtest of it exists
    assert refused.exit_code == 1
    assert "no backtest stored" in refused.output


def changes(before: str, after: str) -> tuple[list[str], list[str]]:
    """(lines removed, lines added) from ``before`` to ``after``, in order; all others are unchanged."""
    import difflib

    diff = list(difflib.ndiff(before.splitlines(), after.splitlines()))
    return [d[2:] for d in diff if d.startswith("- ")], [d[2:] for d in diff if d.startswith("+ ")]


def test_builder_edits_touch_only_their_own_lines() -> None:
    rule = {
        "id": "nordics",
        "name": "Nordic country",
        "when": {"attribute": "country", "in": ["se", "dk"]},
        "points": 20,
    }
    added = set_rule(MODEL, "fit", rule)
    # everything else, in order, byte for byte: the new rule sits after free_mail, before engagement
    assert changes(MODEL, added) == ([], [
        "  - id: nordics",
        "    name: Nordic country",
        "    when: {attribute: country, in: [se, dk]}",
        "    points: 20",
    ])  # fmt: skip
    assert added.index("- id: nordics") > added.index("- id: free_mail") and added.index(
        "- id: nordics"
    ) < added.index("engagement:")
    assert [r.id for r in loads_model(added).fit] == ["title_growth", "free_mail", "nordics"]

    changed = set_rule(
        MODEL,
        "engagement",
        {
            "id": "pricing",
            "name": "Pricing views",
            "event": {"type": "page"},
            "where": {"property": "path", "prefix": "/pricing"},
            "points": 6,
            "cap": 18,
            "half_life": "7d",
        },
        replaces="pricing",
    )
    assert changes(MODEL, changed) == (["    points: 5", "    cap: 15"], ["    points: 6", "    cap: 18"])
    assert comments(changed) == comments(MODEL)  # "# pricing interest goes stale fast" stays on its line

    removed = remove_rule(MODEL, "fit", "title_growth")
    assert changes(MODEL, removed) == ([
        "  - id: title_growth",
        "    name: Growth title",
        "    when: {attribute: job_title, contains: growth}",
        "    points: 20",
    ], [])  # fmt: skip
    listed = set_list(MODEL, "partners", ["a.example", "b.example"], "Resellers")
    assert loads_model(listed).lists["partners"].values == ("a.example", "b.example")
    assert changes(MODEL, listed) == ([], [
        "  partners:",
        "    description: Resellers",
        "    values: [a.example, b.example]",
    ])  # fmt: skip
    grouped = set_rule(MODEL, "groups", {"id": "web", "name": "Web", "cap": 10})
    assert grouped.startswith(MODEL)
    assert loads_model(grouped).groups[0].cap == 10


# --- errors in the author's words, at their line ---------------------------------------------------------

ENGAGEMENT_HEAD = "model: m\nengagement:\n  - id: r\n    name: R\n    event: {type: page}\n"

BAD = [
    # (the model, line, the message: field, value and what is allowed, no pydantic wording)
    (ENGAGEMENT_HEAD + "    points: 1\n    half_life: twice\n", 7,
     "half_life 'twice' is not a number followed by a unit (s, m, h, d or w), e.g. '30d', or none"),
    (ENGAGEMENT_HEAD + "    kind: twice\n    points: 1\n    at_least: 3\n    within: 14d\n", 6,
     "kind 'twice' is not a kind of rule: use each, once, threshold, recency, ratio"),
    (ENGAGEMENT_HEAD + "    points: five\n", 6, "points must be a number, not 'five'"),
    (ENGAGEMENT_HEAD + "    points: 1\n    cap: -5\n", 7, "cap must be greater than 0, not -5"),
    ("model: m\nengagement:\n  - id: r\n    name: R\n    event: {type: pagee}\n    points: 1\n", 5,
     "type is 'pagee'; it must be one of: track, page, screen, identify, group or alias"),
    ("model: m\nfit:\n  - id: Bad Id\n    name: R\n    when: {attribute: a, exists: true}\n    points: 1\n", 3,
     "id 'Bad Id' is not an id: lower-case letters, digits and _, starting with a letter"),
    ("model: m\nfit:\n  - id: r\n    name: [a, b]\n    when: {attribute: a, exists: true}\n    points: 1\n", 4,
     "name must be a text, not a list"),
    ("model: m\nscale:\n  weights: {fit: -1, engagement: 1}\n", 3, "fit must be at least 0, not -1"),
    ("model: m\nscale:\n  levels: {1: high, 2: 35, 3: 15}\n", 3, "levels.1 must be a number, not 'high'"),
    ("model: m\ngroups:\n  - id: {x: 1}\n    name: G\n    cap: 3\n", 3, "id must be a text, not a mapping"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "line", "message"), BAD, ids=[m[:24] for _, _, m in BAD])
def test_bad_models_are_explained_at_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(ModelValidationError) as info:
        loads_model(text)
    problems = info.value.problems
    assert any(p.line == line and message in p.message for p in problems), "\n".join(map(str, problems))
    for p in problems:  # pydantic's own words never reach the author
        assert not re.search(
            r"Input should|valid (string|number|integer)|literal\[|Extra inputs", p.message
        ), p


def test_every_field_given_a_wrong_value_is_explained_in_plain_words() -> None:
    """Each scalar of the example model replaced by a wrong value of three kinds: every problem names a
    field or value in the author's terms, never pydantic's."""
    import copy

    import yaml

    base = yaml.safe_load(DEMO.read_text(encoding="utf-8"))
    base["lists"]["target_accounts"] = {"values": ["a.example"]}

    def scalars(node: object, path: tuple[object, ...]) -> Iterator[tuple[object, ...]]:
        if isinstance(node, dict):
            for k, v in node.items():
                yield from scalars(v, (*path, k))
        elif isinstance(node, list):
            for i, v in enumerate(node):
                yield from scalars(v, (*path, i))
        else:
            yield path

    checked = 0
    for n, path in enumerate(scalars(base, ())):
        value = _at(base, path)
        # one wrong value of another type per field: a word for a number or a flag, else a number or a
        # mapping by turns (three each would load the model ~1,000 times)
        wrong_values = ["twice"] if isinstance(value, int | float | bool) else [-5 if n % 2 else {"x": 1}]
        for wrong in wrong_values:
            doc = copy.deepcopy(base)
            node = doc
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = wrong
            try:
                loads_model(yaml.safe_dump(doc))
            except ModelValidationError as exc:
                for p in exc.problems:
                    checked += 1
                    assert p.line is not None, p
                    assert not re.search(
                        r"Input should|should have|valid (string|number|integer|boolean)|literal\[|String should|Extra inputs|Field required",
                        p.message,
                    ), (path, wrong, str(p))
    assert checked > 200


def _at(doc: object, path: tuple[object, ...]) -> object:
    for part in path:
        doc = doc[part]  # type: ignore[index]
    return doc


# --- the builder over HTTP -------------------------------------------------------------------------------


@pytest.fixture
def builder_site(store: Store) -> Iterator[tuple[str, Store]]:
    populate(store)
    with store.begin() as conn:
        add_user(conn, "marketing@example.test", "M", "marketing", hash_password(PASSWORD), 0)
    app = create_app(Settings(database_url=str(store.url), run_processor=False), store)
    with serving(app) as url:
        yield url, store


def _token(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def _rows(*rows: tuple[str, str, str]) -> dict[str, list[str]]:
    padded = [*rows, *[("", "equals", "")] * (4 - len(rows))]
    return {
        "cond_field": [r[0] for r in padded],
        "cond_op": [r[1] for r in padded],
        "cond_value": [r[2] for r in padded],
    }


def _text(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def test_live_counts_match_the_hand_counted_population(builder_site: tuple[str, Store]) -> None:
    url, _ = builder_site
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)

        def count(**form: object) -> str:
            for _ in range(100):  # as the page does: ask again while a count is still running
                reply = client.post(
                    "/model/builder/count", data={"csrf_token": token, "draft": MODEL, **form}
                )
                assert reply.status_code == 200, reply.text
                if 'hx-trigger="load delay' not in reply.text:
                    break
                time.sleep(0.05)
            return _text(reply.text)

        fit = count(
            section="fit",
            match="all",
            **_rows(("job_title", "contains", "growth"), ("country", "in", "se, dk")),
        )
        assert "Condition 1: 3 leads match" in fit
        assert "Condition 2: 3 leads match" in fit
        assert "The whole rule: 2 leads match" in fit
        either = count(
            section="fit",
            match="any",
            **_rows(("job_title", "contains", "growth"), ("country", "in", "se, dk")),
        )
        assert "The whole rule: 4 leads match" in either
        pages = count(section="engagement", event_type="page", **_rows(("path", "prefix", "/pricing")))
        assert "Condition 1: 3 events in the last 90 days, from 2 leads" in pages
        every_page = count(section="engagement", event_type="page", **_rows())
        assert "The whole rule: 5 events in the last 90 days, from 4 leads" in every_page
        wrong = count(section="fit", **_rows(("employees", "gt", "many")))
        assert "gt takes a number, not 'many'" in wrong


def test_a_slow_engagement_count_is_shown_as_counting_and_asked_for_again(
    builder_site: tuple[str, Store], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A count that takes longer than the request waits: the page says it is counting and asks again; once
    done, the same hand-counted numbers (3 pricing views from 2 leads) come."""
    from leadscore.web.data.remembered import forget
    from leadscore.web.pages import builder

    forget()
    release = threading.Event()
    real = builder.event_matches

    def held(*args: object, **kwargs: object) -> object:  # the real count, started only once released
        release.wait(30)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builder, "event_matches", held)
    url, _ = builder_site
    form = {"section": "engagement", "event_type": "page", **_rows(("path", "prefix", "/pricing"))}
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)
        data = {"csrf_token": token, "draft": MODEL, **form}
        first = client.post("/model/builder/count", data=data)
        assert first.status_code == 200
        assert "Condition 1: counting the events of the last 90 days" in _text(first.text)
        assert "The whole rule: counting the events of the last 90 days" in _text(first.text)
        assert 'hx-trigger="load delay:1000ms"' in first.text
        assert 'hx-post="/model/builder/count"' in first.text
        release.set()
        for _ in range(200):
            again = client.post("/model/builder/count", data=data)
            if "counting" not in again.text:
                break
            time.sleep(0.05)
        shown = _text(again.text)
        assert "Condition 1: 3 events in the last 90 days, from 2 leads" in shown
        assert "The whole rule: 3 events in the last 90 days, from 2 leads" in shown
        assert "hx-trigger" not in again.text


def test_pickers_offer_what_the_store_holds(builder_site: tuple[str, Store]) -> None:
    url, _ = builder_site
    with signed_in(url, "marketing@example.test") as client:
        page = client.get("/model").text
        attributes = re.search(r'<datalist id="b-attributes">(.*?)</datalist>', page, re.S)
        assert attributes is not None
        assert {"job_title", "country", "email_domain"} <= set(
            re.findall(r'value="([^"]+)"', attributes.group(1))
        )
        paths = re.search(r'<datalist id="b-paths">(.*?)</datalist>', page, re.S)
        assert paths is not None
        # /pricing has two views in the last 90 days, the others one each (alphabetical among equals)
        assert re.findall(r'value="([^"]+)"', paths.group(1)) == [
            "/pricing",
            "/blog/a",
            "/pricing/enterprise",
            "/product",
        ]
        countries = client.get(
            "/model/builder/values", params={"cond_field": "country", "section": "fit"}
        ).text
        assert re.findall(r'value="([^"]+)"', countries) == ["se", "de", "dk", "no"]  # se twice, first
        titles = client.get(
            "/model/builder/values",
            params={"cond_field": "path", "section": "engagement", "event_type": "page"},
        ).text
        assert re.findall(r'value="([^"]+)"', titles)[0] == "/pricing"


def test_a_built_rule_is_written_into_the_draft_and_published_with_the_comments(
    builder_site: tuple[str, Store],
) -> None:
    url, store = builder_site
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)
        form = {
            "csrf_token": token,
            "draft": MODEL,
            "section": "fit",
            "id": "nordics",
            "name": "Nordic country",
            "points": "20",
            "match": "all",
            **_rows(("country", "in", "se, dk")),
        }
        built = client.post("/model/builder/rule", data=form)
        assert built.status_code == 200
        draft = unescape(re.search(r'<textarea id="draft"[^>]*>(.*?)</textarea>', built.text, re.S).group(1))  # type: ignore[union-attr]
        assert (
            "  - id: nordics\n    name: Nordic country\n    when: {attribute: country, in: [se, dk]}\n    points: 20\n"
            in draft
        )
        assert (
            "Rule &#39;nordics&#39; added to the draft" in built.text
            or "Rule 'nordics' added to the draft" in built.text
        )

        distribution = client.post("/model/builder/distribution", data={"csrf_token": token, "draft": draft})
        cells = re.findall(
            r'<th scope="row">([^<]+)</th><td class="num">(\d+)</td><td class="num">(\d+)</td>',
            distribution.text,
        )
        # before (stored): u3, u5 ≈ 0; u2 27.3 and u4 25 in 20–30; u1 35.3 in 30–40.
        # after (+20 fit for se/dk = +25 score): u1 60.3, u2 52.3, u3 25.0, u4 25, u5 0.
        assert [(int(b), int(a)) for _, b, a in cells] == [
            (2, 1), (0, 0), (2, 2), (1, 0), (0, 0), (0, 1), (0, 1), (0, 0), (0, 0), (0, 0)
        ]  # fmt: skip

        published = client.post(
            "/model/publish", data={"csrf_token": token, "draft": draft, "note": "nordics"}
        )
        assert published.status_code == 303
    with store.connect() as conn:
        stored = active_version(conn).yaml
    assert stored == draft
    assert comments(stored) == COMMENT_LINES
    assert "id: nordics" in stored


def test_an_invalid_rule_shows_its_problem_at_its_line(builder_site: tuple[str, Store]) -> None:
    url, _ = builder_site
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)
        form = {
            "csrf_token": token,
            "draft": MODEL,
            "section": "engagement",
            "id": "demo",
            "name": "Demo",
            "points": "10",
            "event_type": "track",
            "event_name": "Demo Requested",
            "half_life": "soon",
            **_rows(),
        }
        built = _text(client.post("/model/builder/rule", data=form).text)
    # the rule lands after "pricing" (line 30 of MODEL is its last): lines 31-35, half_life the fifth;
    # its value starts after "    half_life: " (15 characters): column 16
    assert (
        "line 35, column 16 · rule demo · field half_life : half_life 'soon' is not a number followed by a unit"
        in built
    )
    assert "The draft now has problems" in built


def test_a_draft_may_not_read_a_server_file_as_a_list(builder_site: tuple[str, Store]) -> None:
    url, store = builder_site
    with store.connect() as conn:
        before = active_version(conn).id
    draft = MODEL.replace("\nlists:\n", "\nlists:\n  secrets: {csv: /etc/passwd}\n", 1)  # line 7
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)
        refused = client.post("/model/publish", data={"csrf_token": token, "draft": draft, "note": "x"})
    # shown at the list's line, nothing published, nothing of the file on the page
    assert refused.status_code == 422
    assert "line 7, column 18" in refused.text
    assert "only a model file may read a list from a CSV file" in refused.text
    assert "root:" not in refused.text
    with store.connect() as conn:
        assert active_version(conn).id == before


def test_editing_a_rule_prefills_the_form(builder_site: tuple[str, Store]) -> None:
    url, _ = builder_site
    with signed_in(url, "marketing@example.test") as client:
        token = _token(client.get("/model").text)
        page = client.post(
            "/model/builder/edit", data={"csrf_token": token, "draft": MODEL, "edit": "engagement:pricing"}
        ).text
    assert 'name="replaces" value="pricing"' in page
    assert 'id="b-cap" name="cap" value="15"' in page
    assert 'id="b-half-life" name="half_life" value="7d"' in page
    assert 'id="b-field-0" class="b-field" name="cond_field" value="path"' in page
    assert 'id="b-value-0" name="cond_value" value="/pricing"' in page
