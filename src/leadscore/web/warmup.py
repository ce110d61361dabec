"""As the server starts (in a thread of its own: health checks and tracking are answered at once), what the
first request of a dashboard page would otherwise pay once per process, so that a first click after a
restart costs what any click does: every template compiled, the active models parsed with their scoring
and explanation statements built and compiled for this database (a lead page runs both:
``web.data.lead``), and the funnel's all-time reports remembered (``web.data.remembered``: kept for the
state of the tables they read, so never shown once those change). The learning stack (numpy,
scikit-learn) is imported here too: the evaluation's and the review's computations use it in the
background, never a request (``web/pages/evaluation.py``), but an import holds the interpreter for a
second or two, which a request beside it would wait for.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time

from sqlalchemy import func, select

from leadscore.lifecycle.score_stages import view_of
from leadscore.scoring.pipeline import active_model
from leadscore.store import Store
from leadscore.store.schema import scores
from leadscore.web.data import lead as lead_data
from leadscore.web.data import remembered
from leadscore.web.pages import funnel, leads
from leadscore.web.render import templates

log = logging.getLogger(__name__)
# what the evaluation's and the review's background computations import (web/data/measure.py,
# web/pages/evaluation.py, review.py)
LEARNING = (
    "leadscore.learn.checks",
    "leadscore.learn.evaluate",
    "leadscore.learn.store_data",
    "leadscore.learn.backtest",
    "leadscore.learn.sales_feedback",
    "leadscore.learn.review",
)


def warm_up(
    store: Store, done: threading.Event | None = None, stopping: threading.Event | None = None
) -> None:
    """Compile and build what the pages' first requests need, then set ``done``. A failure is logged,
    never raised: the pages then pay for it on their first request, as without this. Once ``stopping`` is
    set (the server shuts down) it ends after the step it is in, so the shutdown waits for no more."""
    stop = stopping or threading.Event()
    started = time.perf_counter()
    try:
        for name in templates.env.list_templates(extensions=["html"]):
            templates.env.get_template(name)
        with store.connect() as conn:
            # one scored lead's page queries built and run once: the ledger's explanation of each of its
            # named scores and the journey's scoring query at its event times
            lead_id = conn.execute(select(func.min(scores.c.lead_id))).scalar()
            view = lead_data.load(conn, store.sources(), int(lead_id)) if lead_id is not None else None
            if view is not None:
                lead_data.journey(conn, store.sources(), view)
            if stop.is_set():
                return
            # the leads list's source choices (a GROUP BY over every lead's attributes, kept a minute)
            leads.filter_sources(store)
            # the funnel's all-time reports (they read the whole stage history: seconds at 100k leads),
            # remembered for the state of the tables they read, as the funnel's first request would
            active = active_model(conn)
            lifecycle = active.model.lifecycle if active is not None else None
            if lifecycle is not None and not stop.is_set():
                first = view_of(conn, lifecycle, None)  # the funnel's first view: the primary score's
                for by in funnel.BY:
                    funnel.all_time(conn, lifecycle, by, first)
        for name in LEARNING:
            if stop.is_set():
                return
            importlib.import_module(name)
        if stop.is_set():
            return
        remembered.start_children()  # where the evaluation and the review are computed
        log.info("dashboard warmed up in %.1f s", time.perf_counter() - started)
    except Exception:
        log.exception("warming the dashboard up failed; the first requests pay for what was not done")
    finally:
        if done is not None:
            done.set()
