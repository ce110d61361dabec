"""Publishing a model with a large list while requests arrive: how long writers wait for it.

    python bench/publish_lists.py [--engine sqlite|postgres|both] [--leads N] [--events M] [--values V]
                                  [--steps publish,rescore,shadow,rollback] [--against SRC]

The bench model (bench/model.yaml) with its target-account list grown to ``V`` values (default 210,000:
200,000 accounts and 10,000 free-mail domains), published into a store of the bench data set
(bench/datagen.py). Meanwhile a prober commits, every 20 ms, what a tracking request's acknowledgement
commits (an inbox row through ``GroupCommitter``) and what a processor's transaction takes first (the
write lock on SQLite, the models lock shared on PostgreSQL). The probes run one after the other, so while
one waits the other does not run. Prints the publication's wall and CPU seconds, the longest wait of an
acknowledgement and of a processor's transaction, and the acknowledgements that failed; then, as
``--steps`` asks (default all), the same for every lead rescored with it active (``leadscore rescore``),
for it published in shadow beside bench/model.yaml, and for a rollback to it.

``--against SRC``: the same run with the package from another source folder (e.g. /work/main/src), in a
child process, and the ratios this / that.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import datagen  # noqa: E402
from rescore import bench_store  # noqa: E402

from leadscore.ingest.apply import event_row  # noqa: E402
from leadscore.ingest.committer import GroupCommitter  # noqa: E402
from leadscore.ingest.segment import normalise  # noqa: E402
from leadscore.model import loads_model  # noqa: E402
from leadscore.scoring import run  # noqa: E402
from leadscore.scoring.pipeline import activate_version, publish, rescore_all  # noqa: E402
from leadscore.scoring.shadow import publish_shadow  # noqa: E402
from leadscore.store import Store  # noqa: E402
from leadscore.store.model_versions import share_models  # noqa: E402

TARGETS = "    values: [acme-0.com, acme-7.com, acme-13.com, acme-42.com, acme-99.com, acme-123.com]"
FREE_MAIL = "    values: [gmail.com, yahoo.com, hotmail.com, outlook.com, icloud.com]"


def model_text(values: int) -> str:
    """bench/model.yaml with ``values`` list values: most as target accounts, a twentieth as free mail."""
    base = (BENCH / "model.yaml").read_text()
    free = values // 21
    accounts = ", ".join(f"acme-{i}.com" for i in range(values - free))
    mail = ", ".join(f"free{i}.example" for i in range(free))
    return base.replace(TARGETS, f"    values: [{accounts}]").replace(
        FREE_MAIL, f"    values: [gmail.com, yahoo.com, hotmail.com, outlook.com, icloud.com, {mail}]"
    )


class Prober:
    """Every 20 ms an acknowledgement and a processor's first lock, each timed (its longest wait kept)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.committer = GroupCommitter(store).start()
        self.stop = threading.Event()
        self.ack_max = self.models_max = 0.0
        self.acks = self.failed = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            message = normalise(
                {"type": "track", "userId": f"probe{n}", "event": "Probe", "messageId": f"probe-{n}"},
                received_ms=int(time.time() * 1000),
            )
            began = time.monotonic()
            try:
                self.committer.submit([event_row(message, "api")]).result(timeout=60)
                self.acks += 1
            except Exception:  # "database is locked" past the busy timeout
                self.failed += 1
            self.ack_max = max(self.ack_max, time.monotonic() - began)
            began = time.monotonic()
            with self.store.begin() as conn:
                share_models(conn)
            self.models_max = max(self.models_max, time.monotonic() - began)
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()
        self.committer.stop()


STEPS = ("publish", "rescore", "shadow", "rollback")


def run_once(
    engine: str, leads: int, events: int, values: int, steps: tuple[str, ...] = STEPS
) -> dict[str, Any]:
    text = model_text(values)
    model = loads_model(text)
    small = (BENCH / "model.yaml").read_text()
    out: dict[str, Any] = {}
    with bench_store(engine) as store:
        datagen.load(store, datagen.Spec(leads=leads, events=events))
        big, _ = _probed(store, "", lambda: publish(store, model, text=text), out)
        if "rescore" in steps:
            _probed(store, "rescore_", lambda: (None, len(rescore_all(store))), out)
        if "shadow" in steps or "rollback" in steps:
            publish(store, loads_model(small), text=small)
        if "shadow" in steps:
            _probed(store, "shadow_", lambda: publish_shadow(store, model, text=text), out)
        if "rollback" in steps:
            _forget_parsed()  # as a new process rolls back: the stored version parsed again
            _probed(store, "rollback_", lambda: activate_version(store, big.id, action="rolled back"), out)
    return {"engine": engine, **out}


def _probed(store: Store, prefix: str, step: Callable[[], tuple[Any, int]], out: dict[str, Any]) -> Any:
    """Run ``step`` (returning something and the leads it scored) while a ``Prober`` probes; its figures
    into ``out`` under ``prefix``."""
    with Prober(store) as prober:
        time.sleep(0.2)
        wall, cpu = time.monotonic(), time.process_time()
        got, count = step()
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        time.sleep(0.2)
    out.update(_measured(prefix, count, wall, cpu, prober))
    return got, count


def _forget_parsed() -> None:
    parsed = getattr(run, "_PARSED", None)
    if parsed is not None:
        parsed.clear()
    else:  # the code before the publication's kept parse
        run.model_of.cache_clear()


def _measured(prefix: str, count: int, wall: float, cpu: float, prober: Prober) -> dict[str, Any]:
    return {
        f"{prefix}leads": count,
        f"{prefix}wall_s": wall,
        f"{prefix}cpu_s": cpu,
        f"{prefix}ack_max_s": prober.ack_max,
        f"{prefix}processor_max_s": prober.models_max,
        f"{prefix}acks": prober.acks,
        f"{prefix}failed": prober.failed,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--engine", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--leads", type=int, default=3000)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--values", type=int, default=210_000)
    parser.add_argument(
        "--steps", default=",".join(STEPS), help="after the publication: " + ", ".join(STEPS[1:])
    )
    parser.add_argument("--against", help="another source folder to run the same bench with (ratios)")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    engines = ("sqlite", "postgres") if args.engine == "both" else (args.engine,)
    steps = tuple(s for s in args.steps.split(",") if s)
    prefixes = [""] + [f"{s}_" for s in STEPS[1:] if s in steps]
    for engine in engines:
        this = run_once(engine, args.leads, args.events, args.values, steps)
        if args.json:
            print(json.dumps(this))
            continue
        for p in prefixes:
            print(_line("this", this, p), flush=True)
        if args.against:
            cmd = [sys.executable, __file__, "--json", "--engine", engine, "--leads", str(args.leads),
                   "--events", str(args.events), "--values", str(args.values), "--steps", args.steps]  # fmt: skip
            env = {**os.environ, "PYTHONPATH": args.against}
            that = json.loads(subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout)
            for p in prefixes:
                print(_line("against", that, p))
            for p in prefixes:
                keys = [f"{p}{k}" for k in ("wall_s", "cpu_s", "ack_max_s", "processor_max_s")]
                ratios = {k: this[k] / that[k] for k in keys if that[k]}
                print(
                    f"  {engine} ratios this/against: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())
                )


def _line(label: str, r: dict[str, Any], p: str = "") -> str:
    what = p.rstrip("_") or "publish"
    return (
        f"{r['engine']:8} {label:8} {r[p + 'leads']} leads: {what} {r[p + 'wall_s']:.1f} s wall, "
        f"{r[p + 'cpu_s']:.1f} s CPU; longest acknowledgement {r[p + 'ack_max_s']:.2f} s ({r[p + 'failed']} "
        f"failed of {r[p + 'acks'] + r[p + 'failed']}), longest wait of a processor's transaction "
        f"{r[p + 'processor_max_s']:.2f} s"
    )


if __name__ == "__main__":
    main()
