"""One Settings object: built once from the environment (the variable names of before), refused with a
clear message when a secret is missing outside development, and passed through ``create_app`` to the
code that uses it, so two apps in one process deliver to their own SMTP servers and set their own
cookies. Nothing below the settings and the CLI reads the environment."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

import leadscore
from leadscore.api import create_app
from leadscore.settings import CookieSettings, LifecycleSettings, Settings, SmtpSettings
from leadscore.store import Store
from leadscore.store.outbox import enqueue, read_outbox
from live_server import serving
from receivers import smtp_server, wait_for

GOOD = "k" * 32


def test_an_empty_webhook_secret_is_refused_outside_development(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADSCORE_ENVIRONMENT", "production")
    monkeypatch.setenv("LEADSCORE_SECRET_KEY", GOOD)
    monkeypatch.setenv("LEADSCORE_WEBHOOK_SECRET", "")
    with pytest.raises(ValidationError, match="LEADSCORE_WEBHOOK_SECRET is empty: outside development"):
        Settings()
    for weak in ("development-only-webhook-secret", "short", " " * 40):
        monkeypatch.setenv("LEADSCORE_WEBHOOK_SECRET", weak)
        with pytest.raises(ValidationError, match="LEADSCORE_WEBHOOK_SECRET"):
            Settings()
    monkeypatch.delenv("LEADSCORE_WEBHOOK_SECRET")  # unset: the development default, refused as well
    with pytest.raises(ValidationError, match="LEADSCORE_WEBHOOK_SECRET is a default or too short"):
        Settings()
    monkeypatch.setenv("LEADSCORE_WEBHOOK_SECRET", "w" * 32)
    assert Settings().webhook.secret == "w" * 32
    monkeypatch.setenv("LEADSCORE_SECRET_KEY", "")  # the server secret is still checked first
    with pytest.raises(ValidationError, match="LEADSCORE_SECRET_KEY must be set"):
        Settings()


def test_development_accepts_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADSCORE_ENVIRONMENT", raising=False)
    monkeypatch.delenv("LEADSCORE_WEBHOOK_SECRET", raising=False)
    assert Settings().webhook.secret == "development-only-webhook-secret"


def test_the_variable_names_of_before_fill_the_sections(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "LEADSCORE_SMTP_HOST": "mail.example",
        "LEADSCORE_SMTP_PORT": "2525",
        "LEADSCORE_SMTP_STARTTLS": "true",
        "LEADSCORE_SMTP_TIMEOUT_S": "3",
        "LEADSCORE_MAIL_FROM": "scores@example.com",
        "LEADSCORE_WEBHOOK_SECRET": "s" * 40,
        "LEADSCORE_WEBHOOK_TIMEOUT_S": "7",
        "LEADSCORE_PUBLIC_URL": "https://scores.example.com",
        "LEADSCORE_RETRY_BASE_S": "2",
        "LEADSCORE_MAX_ATTEMPTS": "9",
        "LEADSCORE_LIFECYCLE_IDLE_S": "0.5",
        "LEADSCORE_RUN_LIFECYCLE": "false",
        "LEADSCORE_COOKIE_SECURE": "true",
        "LEADSCORE_HOOK_FOR_TEST_URL": "http://127.0.0.1:9/hook",
    }.items():
        monkeypatch.setenv(name, value)
    s = Settings()
    assert (s.smtp.host, s.smtp.port, s.smtp.starttls, s.smtp.timeout_s) == ("mail.example", 2525, True, 3.0)
    assert s.smtp.mail_from == "scores@example.com"
    assert (s.webhook.secret, s.webhook.timeout_s) == ("s" * 40, 7.0)
    assert s.webhook.url("env:LEADSCORE_HOOK_FOR_TEST_URL") == "http://127.0.0.1:9/hook"
    assert s.webhook.url("env:LEADSCORE_NOT_SET_URL") is None
    assert s.webhook.url("https://hooks.example.com/x") == "https://hooks.example.com/x"
    lc = s.lifecycle
    assert (lc.public_url, lc.retry_base_s, lc.max_attempts) == ("https://scores.example.com", 2.0, 9)
    assert (lc.lifecycle_idle_s, lc.run_lifecycle, s.cookies.secure) == (0.5, False, True)
    assert "s" * 40 not in repr(s)  # secrets stay out of logs


def test_nothing_below_the_settings_reads_the_environment() -> None:
    root = Path(leadscore.__file__).parent
    allowed = {
        "settings.py",  # where the environment is read
        "cli/server_cmds.py",  # hands the database to the worker processes it starts
        "cli/users_cmds.py",  # a new user's password from a script (LEADSCORE_NEW_PASSWORD), not a setting
        "batch/spark_engine.py",  # tells Spark's Python workers to run this interpreter (PYSPARK_PYTHON)
    }
    readers = {
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if re.search(r"os\.environ|getenv", path.read_text(encoding="utf-8"))
    }
    assert readers <= allowed, readers - allowed


def _mail_row(to: str) -> dict[str, object]:
    return {
        "key": f"test:{to}",
        "channel": "mail",
        "action": "test",
        "lead_id": None,
        "target": to,
        "payload": {"to": to, "subject": "Hello", "body": "hi"},
    }


def test_two_apps_in_one_process_use_their_own_settings(tmp_path: Path) -> None:
    """Each app's runner delivers to its own SMTP server and its dashboard sets its own cookie flags."""
    with smtp_server() as (box_a, port_a), smtp_server() as (box_b, port_b):
        apps = []
        for name, port, secure in (("a", port_a, True), ("b", port_b, False)):
            db = str(tmp_path / f"{name}.db")
            store = Store.from_url(db)
            with store.begin() as conn:
                enqueue(conn, [_mail_row(f"{name}@vendor.example")], 0)
            settings = Settings(
                database_url=db,
                processor_idle_s=0.05,
                smtp=SmtpSettings(port=port, timeout_s=5),
                lifecycle=LifecycleSettings(lifecycle_idle_s=0.05),
                cookies=CookieSettings(secure=secure),
            )
            apps.append((create_app(settings, store), store))
        with serving(apps[0][0]) as url_a, serving(apps[1][0]) as url_b:
            wait_for(lambda: box_a.messages and box_b.messages, 10.0)
            cookie_a = httpx.get(url_a + "/signin").headers["set-cookie"]
            cookie_b = httpx.get(url_b + "/signin").headers["set-cookie"]
        assert [m["To"] for m in box_a.messages] == ["a@vendor.example"]
        assert [m["To"] for m in box_b.messages] == ["b@vendor.example"]
        assert "secure" in cookie_a.lower() and "secure" not in cookie_b.lower()
        for _, store in apps:
            with store.connect() as conn:
                assert [r["status"] for r in read_outbox(conn)] == ["sent"]
            store.dispose()
