"""Speed of learning, backtesting and scoring a learned model on the funnel simulator (issue 18 §6).

    python bench/learn_speed.py                         # 2,000 leads (~200k events): a few minutes
    python bench/learn_speed.py --leads 20000           # the issue's size: 20k leads, ~2M events
    python bench/learn_speed.py --db funnel.db          # an existing simulator store (kept)
    python bench/learn_speed.py --db funnel.db --parts backtest,score --model learned.yaml

Each part runs in a child process of its own, so its peak RSS is its own:

0. files: ``learn`` (C and pairs by cross-validation, as ``leadscore learn FILE.csv``; no challenger)
   against LightGBM on the same training rows of the shared public files (X Education, UCI online
   shoppers; skipped where absent): CPU seconds and the ratio (target ≤ 3×). LightGBM is fitted three
   times (its threads' CPU moves with the machine's load: the lowest and highest are printed) and
   imported before any of them, so no file's fit pays for its import. Start-up is printed beside it:
   the CPU of a fresh interpreter importing what learning needs (``leadscore.learn.train`` and
   ``.dataset``), and of one importing ``lightgbm``; "with start-up" adds each side's to its fit.

1. learn: point-in-time rows from the store (``store_data``, as ``leadscore learn --db`` reads them:
   cutoffs every 14 days from day 96 to 180, 90-day horizon), then ``learn`` (the points model with its
   cross-validation and rule budget, no challenger), then LightGBM (the challenger, library defaults) on
   the same training rows and features (the lowest of three fits). CPU seconds of the process (every
   thread); the ratio learn / LightGBM is the issue's "≤ 3×". The learned model is written for parts 2 and 3.
2. backtest: the learned model against the shipped example (examples/b2b_saas) over the 84 days from
   day 270, with the threshold advice (``--mqls-per-week``), as ``leadscore backtest`` runs it: wall and
   CPU seconds, peak RSS (target ≤ 2 minutes, ≤ 2 GB at 20k leads / 2M events).
3. scoring every lead as of day 354 with the learned model and with the example (the ledger query,
   ``scoring.run.score``, as ``rescore`` runs it): seconds and the ratio learned / example.

Prints ``uptime``'s load beside the figures: the machine is shared. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

EXAMPLE = Path(__file__).parents[1] / "examples" / "b2b_saas" / "model.yaml"
TRAIN_DAYS = range(96, 181, 14)
HORIZON_DAYS = 90
BACKTEST_START_DAY, BACKTEST_DAYS = 270, 84
EXCLUDE = ["account.group_id"]
FILES = (("X Education", "x_education_leads/Leads.csv", "Converted", "Prospect ID"),
         ("UCI online shoppers", "uci_online_shoppers_intention/online_shoppers_intention.csv", "Revenue", None))  # fmt: skip
ROOT = Path(__file__).resolve().parents[1]
DATA = next((p for p in (ROOT.parent / "shared" / "data", ROOT.parent.parent / "shared" / "data") if p.exists()),
            ROOT.parent / "shared" / "data")  # fmt: skip


def load() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def part_learn(db: str, out: str, max_rules: int) -> dict[str, Any]:
    from leadscore.demo.funnel import DAY, START_MS
    from leadscore.learn.challenger import fit_challenger
    from leadscore.learn.dataset import split_rows
    from leadscore.learn.store_data import store_data
    from leadscore.learn.train import learn
    from leadscore.store import Store

    store = Store.from_url(db)
    cpu, wall = time.process_time(), time.perf_counter()
    with store.connect() as conn:
        data, _ = store_data(conn, store.sources(), outcome="opportunity", horizon_ms=HORIZON_DAYS * DAY,
                             at=[START_MS + d * DAY for d in TRAIN_DAYS], end_ms=START_MS + 270 * DAY,
                             exclude=EXCLUDE)  # fmt: skip
    rows_cpu, rows_wall = time.process_time() - cpu, time.perf_counter() - wall
    cpu, wall = time.process_time(), time.perf_counter()
    result = learn(data, "funnel", challenger=None, max_rules=max_rules, C="cv")  # as `leadscore learn`
    learn_cpu, learn_wall = time.process_time() - cpu, time.perf_counter() - wall
    train, _, _ = split_rows(data, "hash")  # the rows learn trained on (its default holdout)
    import lightgbm  # noqa: F401  (before the fits, as in part_files)

    fits = []
    for _ in range(3):  # the lowest of three: LightGBM's threads' CPU moves with the machine's load
        cpu, wall = time.process_time(), time.perf_counter()
        challenger = fit_challenger(data.features, train.X, train.y, "lightgbm")
        fits.append((time.process_time() - cpu, time.perf_counter() - wall))
    lgbm_cpu, lgbm_wall = min(fits)
    Path(out).write_text(result.yaml)
    store.dispose()
    return {"rows": len(data), "train_rows": len(train), "features": len(data.features),
            "rules": len(result.model.fit) + len(result.model.engagement), "challenger": challenger.kind,
            "rows_cpu": rows_cpu, "rows_wall": rows_wall, "learn_cpu": learn_cpu, "learn_wall": learn_wall,
            "lgbm_cpu": lgbm_cpu, "lgbm_wall": lgbm_wall, "peak_rss_mib": peak_rss_mib()}  # fmt: skip


def part_files(data_dir: str, max_rules: int) -> dict[str, Any]:
    """``learn`` against LightGBM on the shared public files, as ``leadscore learn FILE.csv`` runs them."""
    import warnings

    import lightgbm  # noqa: F401  (imported before the fits: start-up is measured on its own)

    from leadscore.learn.challenger import fit_challenger
    from leadscore.learn.dataset import csv_data, split_rows
    from leadscore.learn.scorecard import LeakageWarning
    from leadscore.learn.train import learn

    out: dict[str, Any] = {}
    for name, path, outcome, key in FILES:
        file = Path(data_dir) / path
        if not file.exists():
            continue
        data = csv_data(file, outcome, id_column=key)
        cpu = time.process_time()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LeakageWarning)
            result = learn(data, "speed", challenger=None, max_rules=max_rules, C="cv")
        learn_cpu = time.process_time() - cpu
        train, _, _ = split_rows(data, "hash")
        lgbm = []
        for _ in range(3):
            cpu = time.process_time()
            fit_challenger(data.features, train.X, train.y, "lightgbm")
            lgbm.append(time.process_time() - cpu)
        out[name] = {"rows": len(train), "learn_cpu": learn_cpu, "lgbm_cpu": min(lgbm), "lgbm_max": max(lgbm),
                     "rules": len(result.model.fit) + len(result.model.engagement)}  # fmt: skip
    return out


def startup_cpu(imports: str) -> float:
    """CPU seconds (user and system) of a fresh interpreter that only imports ``imports``."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", f"import {imports}"], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def part_backtest(db: str, model_path: str) -> dict[str, Any]:
    from leadscore.demo.funnel import DAY, START_MS
    from leadscore.learn.backtest import backtest
    from leadscore.model import load_model
    from leadscore.store import Store

    store = Store.from_url(db)
    start = START_MS + BACKTEST_START_DAY * DAY
    cpu, wall = time.process_time(), time.perf_counter()
    with store.connect() as conn:
        bt = backtest(conn, store.sources(), ("learned", load_model(Path(model_path)), None),
                      ("example", load_model(EXAMPLE), None), start_ms=start, end_ms=start + BACKTEST_DAYS * DAY,
                      outcome="opportunity", horizon_ms=HORIZON_DAYS * DAY, per_week=50.0)  # fmt: skip
    store.dispose()
    return {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall, "peak_rss_mib": peak_rss_mib(),
            "mqls": [bt.candidate.mqls, bt.baseline.mqls if bt.baseline else None]}  # fmt: skip


def part_score(db: str, model_path: str) -> dict[str, Any]:
    from leadscore.demo.funnel import DAY, START_MS
    from leadscore.model import load_model
    from leadscore.scoring.run import all_leads, score
    from leadscore.store import Store

    store = Store.from_url(db)
    as_of = START_MS + (BACKTEST_START_DAY + BACKTEST_DAYS) * DAY
    out: dict[str, Any] = {}
    with store.connect() as conn:
        for name, path in (("example", EXAMPLE), ("learned", Path(model_path)), ("example_again", EXAMPLE)):
            model = load_model(path)
            cpu, wall = time.process_time(), time.perf_counter()
            ledgers = score(conn, model, store.sources(), all_leads(as_of))
            out[name] = {"cpu": time.process_time() - cpu, "wall": time.perf_counter() - wall,
                         "leads": len(ledgers), "rules": len(model.fit) + len(model.engagement)}  # fmt: skip
    store.dispose()
    return out


def child(part: str, *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--part", part, *args], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"part {part} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", help="an existing simulator store (SQLite file), 360 days")
    parser.add_argument("--max-rules", type=int, default=30)
    parser.add_argument(
        "--model", help="a learned model YAML for the backtest and scoring parts (no learn part)"
    )
    parser.add_argument("--parts", default="files,learn,backtest,score")
    parser.add_argument(
        "--data", default=str(DATA), help="the shared public files (X Education, online shoppers)"
    )
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("rest", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.part:  # a child: one part, its figures as JSON on the last line
        run = {"learn": lambda: part_learn(args.rest[0], args.rest[1], args.max_rules),
               "files": lambda: part_files(args.rest[0], args.max_rules),
               "backtest": lambda: part_backtest(*args.rest), "score": lambda: part_score(*args.rest)}  # fmt: skip
        print(json.dumps(run[args.part]()))
        return 0
    parts = args.parts.split(",")
    if "files" in parts:
        up_learn = startup_cpu("leadscore.learn.train, leadscore.learn.dataset")
        up_lgbm = startup_cpu("lightgbm")
        print(f"start-up [load {load()}]: a fresh interpreter importing the learner {up_learn:.2f} CPU-s, "
              f"importing lightgbm {up_lgbm:.2f} CPU-s")  # fmt: skip
        for name, r in child("files", args.data, "--max-rules", str(args.max_rules)).items():
            print(f"learn {name} [load {load()}]: {r['rows']:,} training rows, {r['rules']} rules: learn "
                  f"{r['learn_cpu']:.2f} CPU-s, LightGBM {r['lgbm_cpu']:.2f} CPU-s (lowest of 3; highest "
                  f"{r['lgbm_max']:.2f}): {r['learn_cpu'] / r['lgbm_cpu']:.2f}x (target ≤ 3x); with start-up "
                  f"{(up_learn + r['learn_cpu']) / (up_lgbm + r['lgbm_cpu']):.2f}x")  # fmt: skip
    if not {"learn", "backtest", "score"} & set(parts):
        return 0  # the files only: no simulator store to make
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if db is None:
            from leadscore.demo.funnel import simulate, write
            from leadscore.store import Store

            started = time.perf_counter()
            funnel = simulate(leads=args.leads, seed=args.seed, days=360)
            db = str(Path(tmp) / "funnel.db")
            store = Store.from_url(db)
            n = write(store, funnel)
            store.dispose()
            print(
                f"{args.leads:,} leads, {n:,} messages, seed {args.seed} ({time.perf_counter() - started:.0f} s)"
            )
        model_path = str(Path(tmp) / "learned.yaml")
        if "learn" in parts:
            r = child("learn", db, model_path, "--max-rules", str(args.max_rules))
            print(f"learn  [load {load()}]: {r['rows']:,} rows ({r['train_rows']:,} trained on), "
                  f"{r['features']} features, {r['rules']} rules")  # fmt: skip
            print(f"  rows from the store      {r['rows_cpu']:8.1f} CPU-s {r['rows_wall']:8.1f} s")
            print(f"  learn (points model)     {r['learn_cpu']:8.1f} CPU-s {r['learn_wall']:8.1f} s")
            print(f"  {r['challenger']:<24} {r['lgbm_cpu']:8.1f} CPU-s {r['lgbm_wall']:8.1f} s")
            print(f"  learn / {r['challenger']} CPU: {r['learn_cpu'] / r['lgbm_cpu']:.2f}x (target ≤ 3x); "
                  f"peak RSS {r['peak_rss_mib']:,.0f} MiB")  # fmt: skip
        else:  # the model's lists are read beside it: the file itself, not a copy
            model_path = args.model or str(EXAMPLE)
            if "backtest" in parts or "score" in parts:
                print(f"(no learn part: {model_path} stands in for the learned model)")
        if "backtest" in parts:
            r = child("backtest", db, model_path)
            print(f"backtest [load {load()}]: learned against the example, {BACKTEST_DAYS} days, with advice: "
                  f"{r['wall']:.1f} s ({r['cpu']:.1f} CPU-s), peak RSS {r['peak_rss_mib']:,.0f} MiB "
                  f"(target ≤ 120 s, ≤ 2,048 MiB); MQLs {r['mqls']}")  # fmt: skip
        if "score" in parts:
            r = child("score", db, model_path)
            base = min(r["example"]["cpu"], r["example_again"]["cpu"])
            print(f"score every lead [load {load()}]: learned ({r['learned']['rules']} rules) "
                  f"{r['learned']['cpu']:.1f} CPU-s / {r['learned']['wall']:.1f} s, example "
                  f"({r['example']['rules']} rules) {base:.1f} CPU-s: ratio {r['learned']['cpu'] / base:.2f}x "
                  f"({r['learned']['leads']:,} leads)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
