"""Admin pages and notification settings over real HTTP (uvicorn, SQLite demo, seed 8): an admin creates
an API key of each kind on the web (shown once, it works on the API at once, the audit log says who) and
revokes one; a seller sets their own notifications on their profile, with clear refusals of what cannot
work; a rep may not change another's, their team's manager and an admin may (the Users page links
there); ``leadscore users create`` without a terminal says what to do instead of "Aborted."."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from leadscore.auth.passwords import hash_password
from leadscore.model.yaml_io import dump_model
from leadscore.scoring.pipeline import active_model
from leadscore.store.audit import read_audit
from leadscore.store.notifications import NotificationSettings, read_settings
from leadscore.store.users import add_user, find_user
from receivers import wait_for
from web_support import PASSWORD, SELLER, Site, csrf_of, signed_in, site

MANAGER = "tom.becker@vendor.example"  # manager of Lena and Paul's team (Rest of EMEA) in the demo model
OTHER_REP = "paul.martin@vendor.example"  # another seller of that team
HOOK = "https://hooks.slack.example/services/T0/B0/x"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    with site(tmp_path_factory.mktemp("admin"), leads=20, seed=8) as s:
        with s.store.begin() as conn:
            add_user(conn, MANAGER, "Tom Becker", "sales", hash_password(PASSWORD), 0)
            add_user(conn, OTHER_REP, "Paul Martin", "sales", hash_password(PASSWORD), 0)
        yield s


def _user_id(demo: Site, email: str) -> int:
    with demo.store.connect() as conn:
        user = find_user(conn, email)
    assert user is not None
    return user.id


def _settings(demo: Site, email: str) -> NotificationSettings:
    with demo.store.connect() as conn:
        return read_settings(conn, _user_id(demo, email))


def test_an_admin_creates_keys_of_each_kind_that_work_at_once_and_revokes_one(demo: Site) -> None:
    with signed_in(demo.url, "admin@example.test") as admin:
        assert 'href="/keys"' in admin.get("/leads").text  # in the admin's navigation
        token = csrf_of(admin)
        made = admin.post("/keys", data={"kind": "read", "name": "crm sync", "csrf_token": token})
        assert made.status_code == 201
        secret = html.unescape(re.search(r'<code id="issued-key">([^<]+)</code>', made.text).group(1))  # type: ignore[union-attr]
        assert secret.startswith("lsr_")
        key_id = int(re.search(r"Created read key (\d+)", made.text).group(1))  # type: ignore[union-attr]
        api = httpx.Client(base_url=demo.url, timeout=30)  # closed below
        assert api.get("/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
        # the list shows the key by its prefix only; the secret is not on the page again
        listed = admin.get("/keys").text
        assert f'<tr data-key="{key_id}">' in listed and secret not in listed
        for kind, prefix in (("write", "lsw_"), ("admin", "lsa_")):
            other = admin.post("/keys", data={"kind": kind, "name": f"{kind} key", "csrf_token": token})
            assert other.status_code == 201 and f'<code id="issued-key">{prefix}' in other.text
        bad = admin.post("/keys", data={"kind": "root", "name": "x", "csrf_token": token})
        assert bad.status_code == 422
        assert admin.post("/keys", data={"kind": "read", "name": "x"}).status_code == 403  # no CSRF token
        gone = admin.post(f"/keys/{key_id}/revoke", data={"csrf_token": token})
        assert gone.status_code == 303 and gone.headers["location"] == f"/keys?revoked={key_id}"
        # verified keys are cached for api.auth.TTL_S (5 s): refused within that
        wait_for(
            lambda: api.get("/v1/leads", headers={"Authorization": f"Bearer {secret}"}).status_code == 401,
            15.0,
        )
        assert admin.post(f"/keys/{key_id}/revoke", data={"csrf_token": token}).status_code == 404
        api.close()
    with demo.store.connect() as conn:
        entries = [(e["actor"], e["action"], e["target"]) for e in read_audit(conn, 20)]
    assert ("admin@example.test", "key.create", f"key:{key_id}") in entries
    assert ("admin@example.test", "key.revoke", f"key:{key_id}") in entries
    with signed_in(demo.url, SELLER) as sales:
        assert sales.get("/keys").status_code == 403


def test_a_seller_sets_their_own_notifications_on_their_profile(demo: Site) -> None:
    with signed_in(demo.url, SELLER) as lena:
        assert 'href="/profile"' in lena.get("/handoff").text  # their name in the header links there
        page = lena.get("/profile")
        assert page.status_code == 200 and "<h1>Notifications</h1>" in page.text
        token = csrf_of(lena)
        saved = lena.post(
            "/profile",
            data={
                "mail_immediate": "on",
                "slack_url": HOOK,
                "slack_digest": "on",
                "digest_hour": "7",
                "csrf_token": token,
            },
        )
        assert saved.status_code == 303 and saved.headers["location"] == "/profile?saved=1"
        assert _settings(demo, SELLER) == NotificationSettings(
            mail_immediate=True, slack_url=HOOK, slack_digest=True, digest_hour=7
        )
        shown = lena.get("/profile?saved=1").text
        assert 'role="status">Saved' in shown
        assert 'id="n-mail-immediate" name="mail_immediate" checked' in shown
        assert '<option value="7" selected>07:00</option>' in shown
        # what cannot work is refused in words, and nothing changes
        refused = lena.post("/profile", data={"slack_immediate": "on", "slack_url": "", "csrf_token": token})
        assert refused.status_code == 400
        assert "Slack messages need the incoming webhook&#39;s URL" in refused.text
        refused = lena.post("/profile", data={"slack_url": "javascript:alert(1)", "csrf_token": token})
        assert refused.status_code == 400 and "must start with https://" in refused.text
        assert _settings(demo, SELLER).slack_url == HOOK
        # and not someone else's
        paul = _user_id(demo, OTHER_REP)
        assert lena.get(f"/users/{paul}/notifications").status_code == 403
        denied = lena.post(f"/users/{paul}/notifications", data={"mail_digest": "on", "csrf_token": token})
        assert denied.status_code == 403
    assert _settings(demo, OTHER_REP) == NotificationSettings()
    with demo.store.connect() as conn:
        entry = next(e for e in read_audit(conn, 20) if e["action"] == "user.notifications")
    assert (entry["actor"], entry["target"]) == (SELLER, SELLER)
    assert entry["details"]["slack_url_set"] is True and HOOK not in str(entry["details"])  # a secret


def test_the_teams_manager_and_an_admin_set_a_sellers_notifications(demo: Site) -> None:
    paul = _user_id(demo, OTHER_REP)
    with signed_in(demo.url, MANAGER) as tom:
        own = tom.get("/profile").text  # the manager's profile links to each of the team's sellers
        assert f'<a href="/users/{paul}/notifications">Paul Martin (Rest of EMEA)</a>' in own
        page = tom.get(f"/users/{paul}/notifications")
        assert page.status_code == 200 and "paul.martin@vendor.example" in page.text
        done = tom.post(
            f"/users/{paul}/notifications", data={"mail_digest": "on", "csrf_token": csrf_of(tom)}
        )
        assert done.status_code == 303
    assert _settings(demo, OTHER_REP) == NotificationSettings(mail_digest=True)
    with signed_in(demo.url, "admin@example.test") as admin:
        users = admin.get("/users").text
        assert f'href="/users/{paul}/notifications"' in users
        done = admin.post(
            f"/users/{paul}/notifications",
            data={"mail_immediate": "on", "digest_hour": "23", "csrf_token": csrf_of(admin)},
        )
        assert done.status_code == 303
        assert admin.get("/users/999999/notifications").status_code == 404
    assert _settings(demo, OTHER_REP) == NotificationSettings(mail_immediate=True, digest_hour=23)
    with signed_in(demo.url, "marketing@example.test") as marketing:  # manages no team
        assert marketing.get(f"/users/{paul}/notifications").status_code == 403


def test_users_create_without_a_terminal_says_what_to_do(demo: Site) -> None:
    done = subprocess.run(
        [sys.executable, "-c", "from leadscore.cli.main import app; app()", "users", "create",
         "--email", "x@example.test", "--role", "sales", "--db", demo.db],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    said = " ".join(done.stderr.replace("│", " ").split())
    assert "Aborted" not in said
    assert "there is no terminal to read the password from: set LEADSCORE_NEW_PASSWORD" in said
    assert "invite the user on the dashboard's Users page" in said
    with demo.store.connect() as conn:
        assert find_user(conn, "x@example.test") is None


def test_user_changes_on_the_web_are_in_the_audit_log_as_the_clis_are(demo: Site) -> None:
    with signed_in(demo.url, "admin@example.test") as admin:
        token = csrf_of(admin)
        assert (
            admin.post(
                "/users", data={"email": "ida@vendor.example", "role": "sales", "csrf_token": token}
            ).status_code
            == 201
        )
        ida = _user_id(demo, "ida@vendor.example")
        assert (
            admin.post(f"/users/{ida}/role", data={"role": "marketing", "csrf_token": token}).status_code
            == 303
        )
        assert admin.post(f"/users/{ida}/password", data={"csrf_token": token}).status_code == 200
    with demo.store.connect() as conn:
        entries = [
            (e["actor"], e["action"], e["details"])
            for e in read_audit(conn, 50)
            if e["target"] == "ida@vendor.example"
        ]
    assert entries == [  # newest first
        ("admin@example.test", "user.password", {}),
        ("admin@example.test", "user.role", {"role": "marketing"}),
        ("admin@example.test", "user.create", {"role": "sales"}),
    ]


def test_a_password_reset_on_the_web_signs_the_user_out_everywhere(demo: Site) -> None:
    with demo.store.begin() as conn:
        add_user(conn, "eve@vendor.example", "Eve Stolen", "sales", hash_password(PASSWORD), 0)
    eve = _user_id(demo, "eve@vendor.example")
    with (
        signed_in(demo.url, "eve@vendor.example") as stolen,
        signed_in(demo.url, "admin@example.test") as admin,
    ):
        assert stolen.get("/leads").status_code == 200
        reset = admin.post(f"/users/{eve}/password", data={"csrf_token": csrf_of(admin)})
        assert reset.status_code == 200
        gone = stolen.get("/leads")
        assert gone.status_code == 303 and gone.headers["location"] == "/signin?next=%2Fleads"
        assert admin.get("/users").status_code == 200  # the admin's own session is untouched


def test_a_model_naming_an_admin_a_seller_of_ones_team_gives_no_power_over_the_admins_settings(
    tmp_path: Path,
) -> None:
    """Marketing may publish models, and the model's teams say who manages whom: naming themself the
    manager of a team that lists the admin as a seller must not let them redirect the admin's alerts."""
    with site(tmp_path, leads=10, seed=8) as own:
        with own.store.connect() as conn:
            active = active_model(conn)
            assert active is not None
            text = dump_model(active.model)
        manager = "      email: maja.lind@vendor.example\n    sellers:\n"  # the Nordics team
        assert manager in text
        teams = text.replace(
            manager,
            "      email: marketing@example.test\n    sellers:\n"
            "    - name: The Admin\n      email: admin@example.test\n      id: the_admin\n",
            1,
        )
        admin = _user_id(own, "admin@example.test")
        with signed_in(own.url, "marketing@example.test") as marketing:
            token = csrf_of(marketing)
            published = marketing.post("/model/publish", data={"draft": teams, "csrf_token": token})
            assert published.status_code == 303
            team = marketing.get("/profile").text  # names the admin, with no link to their settings
            assert (
                '<li>The Admin (Nordics) <span class="muted">(admin@example.test is not a sales user' in team
            )
            assert f'href="/users/{admin}/notifications"' not in team
            assert marketing.get(f"/users/{admin}/notifications").status_code == 403
            hijack = {"slack_url": HOOK, "slack_immediate": "on", "csrf_token": token}
            assert marketing.post(f"/users/{admin}/notifications", data=hijack).status_code == 403
        assert _settings(own, "admin@example.test") == NotificationSettings()


def test_an_admin_disables_a_user_on_the_web_and_enables_them_again(demo: Site) -> None:
    """Disable: Fay's session ends at once, she cannot sign in, the audit log says who did it; an admin
    cannot disable themself. Enable: she signs in again with her password."""
    with demo.store.begin() as conn:
        add_user(conn, "fay@vendor.example", "Fay Left", "sales", hash_password(PASSWORD), 0)
    fay = _user_id(demo, "fay@vendor.example")
    me = _user_id(demo, "admin@example.test")
    with (
        signed_in(demo.url, "fay@vendor.example") as hers,
        signed_in(demo.url, "admin@example.test") as admin,
    ):
        assert hers.get("/leads").status_code == 200
        token = csrf_of(admin)
        done = admin.post(f"/users/{fay}/access", data={"access": "disable", "csrf_token": token})
        assert (done.status_code, done.headers["location"]) == (303, "/users?done=disabled")
        assert hers.get("/leads").status_code == 303  # signed out everywhere
        page = admin.get("/users?done=disabled").text
        assert 'fay@vendor.example <span class="muted">(disabled)</span>' in page
        assert 'aria-label="Enable fay@vendor.example"' in page
        assert (
            admin.post(f"/users/{me}/access", data={"access": "disable", "csrf_token": token}).status_code
            == 409
        )
        assert (
            admin.post("/users/999999/access", data={"access": "enable", "csrf_token": token}).status_code
            == 404
        )
    with httpx.Client(base_url=demo.url, follow_redirects=False, timeout=30) as client:
        form = client.get("/signin")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert csrf is not None
        refused = client.post("/signin", data={"email": "fay@vendor.example", "password": PASSWORD,
                                               "csrf_token": csrf.group(1)})  # fmt: skip
        assert refused.status_code != 303
    with signed_in(demo.url, "admin@example.test") as admin:
        done = admin.post(f"/users/{fay}/access", data={"access": "enable", "csrf_token": csrf_of(admin)})
        assert done.status_code == 303
    with signed_in(demo.url, "fay@vendor.example") as back:
        assert back.get("/leads").status_code == 200
    with demo.store.connect() as conn:
        entries = [
            (e["actor"], e["action"]) for e in read_audit(conn, 50) if e["target"] == "fay@vendor.example"
        ]
        user = find_user(conn, "fay@vendor.example")
    assert entries == [("admin@example.test", "user.enable"), ("admin@example.test", "user.disable")]
    assert user is not None and user.active
