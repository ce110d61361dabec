"""What a server process sets up for itself: the collector tuned once the app is built (in a child
process, since it changes the whole interpreter)."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import gc, os
os.environ["LEADSCORE_DATABASE_URL"] = os.path.join({tmp!r}, "db.sqlite")
os.environ["LEADSCORE_RUN_PROCESSOR"] = "0"
from leadscore.api.app import app_from_env
assert gc.get_freeze_count() == 0
app_from_env()
print(gc.get_threshold(), gc.get_freeze_count() > 1000)
"""


def test_the_app_factory_tunes_the_collector(tmp_path: object) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD.format(tmp=str(tmp_path))], capture_output=True, text=True, check=True
    )
    assert out.stdout.split("\n")[0] == "(10000, 20, 20) True"
