"""Points as a screen shows them: rounded so that the shown parts add up to the shown whole.

A ledger's lines add up to the score, and the events behind a line add up to the line, as numbers. Each
rounded on its own they do not: three lines of 1/3 point each show as 0.33 + 0.33 + 0.33 under a score
of 1.00. ``apportion`` rounds by largest remainder (Hamilton's method): every part is cut down to the
shown decimals, and the units the cuts lost go back one each to the parts that lost the most, so the
shown parts add up to the whole as it is shown, and no part moves more than one unit from its value. A
part already exact at those decimals never moves. The dashboard's lead page and ``leadscore explain``
both show a ledger through it, by ``shown_lines``: the ledger's lines apportioned in its own order, so
a tie goes to the same line on every screen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leadscore.compile.ledger import Ledger

# a float part within this many millionths of a shown unit of a whole unit is that unit (6.0 stored as
# 5.999999999999999 is 6.00, not a 5.99 given a unit back or not)
_NOISE = 6


def apportion(parts: Sequence[float], whole: float, places: int = 2) -> list[float]:
    """``parts`` rounded to ``places`` decimals so that they add up to ``whole`` as ``f"{whole:.{places}f}"``
    shows it (largest remainder; ties to the earlier part). ``whole`` is their sum, or that sum as shown
    (the events of a line add up to the line as shown); parts a shown unit or more away from it are
    each rounded on their own, so a real difference still shows."""
    scale = 10**places
    units = [round(p * scale, _NOISE) for p in parts]
    target = round(float(f"{whole:.{places}f}") * scale)
    if abs(math.fsum(units) - whole * scale) >= 1:
        return [round(u) / scale for u in units]
    cut = [math.floor(u) for u in units]
    missing = target - sum(cut)
    short = [i for i in range(len(units)) if units[i] > cut[i]]
    if not 0 <= missing <= len(short):  # a whole at a rounding boundary, off by float noise
        return [round(u) / scale for u in units]
    for i in sorted(short, key=lambda i: (cut[i] - units[i], i))[:missing]:
        cut[i] += 1
    return [c / scale for c in cut]


def shown_lines(ledger: Ledger) -> list[float]:
    """The score points of the ledger's lines as every screen shows them (two decimals), in the ledger's
    order, adding up to its score as shown; of lines tied for a rounding unit, the earlier in the ledger
    (the model's order) gets it, whatever order a screen then lists them in."""
    return apportion([line.score_points for line in ledger.lines], ledger.score)
