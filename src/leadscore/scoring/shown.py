"""Points as a screen shows them: rounded so that the shown parts add up to the shown whole.

A ledger's lines add up to the score, and the events behind a line add up to the line, as numbers. Each
rounded on its own they do not: three lines of 1/3 point each show as 0.33 + 0.33 + 0.33 under a score
of 1.00. ``apportion`` rounds by largest remainder (Hamilton's method): every part is cut down to the
shown decimals, and the units the cuts lost go back one each to the parts that lost the most, so the
shown parts add up to the whole as it is shown, and no part moves more than one unit from its value. A
part already exact at those decimals never moves. The dashboard's lead page and ``leadscore explain``
both show a ledger through it, by ``shown_lines``: the ledger's lines apportioned in its own order, so
a tie goes to the same line on every screen.

A score is shown cut, never rounded up (``cut``): a lead at 59.996 is not an MQL at 60 (nor grade B at a
fit of 60), and a screen showing it as 60.0 would say it is. Cut to the shown decimals, a number is at
least a threshold written with no more decimals exactly when the value is, so what a list, a lead page,
a digest or a payload shows never contradicts the stage, grade, level or band beside it. Every screen
shows scores through ``cut`` and ``cut_text``, and a change of score (the lead page's moves, getting
warmer, ``leadscore history``) as the difference of the two as shown (``shown_change``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Context, Decimal
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leadscore.compile.ledger import Ledger

# a float part within this many millionths of a shown unit of a whole unit is that unit (6.0 stored as
# 5.999999999999999 is 6.00, not a 5.99 given a unit back or not)
_NOISE = 6


def apportion(parts: Sequence[float], whole: float, places: int = 2) -> list[float]:
    """``parts`` rounded to ``places`` decimals so that they add up to ``whole`` as ``cut(whole, places)``
    shows it, cut (largest remainder; ties to the earlier part). ``whole`` is their sum, or that sum as shown
    (the events of a line add up to the line as shown); parts a shown unit or more away from it are
    each rounded on their own, so a real difference still shows."""
    scale = 10**places
    units = [round(p * scale, _NOISE) for p in parts]
    target = round(cut(whole, places) * scale)
    if abs(math.fsum(units) - whole * scale) >= 1:
        return [round(u) / scale for u in units]
    down = [math.floor(u) for u in units]
    missing = target - sum(down)
    short = [i for i in range(len(units)) if units[i] > down[i]]
    if not 0 <= missing <= len(short):  # a whole at a rounding boundary, off by float noise
        return [round(u) / scale for u in units]
    for i in sorted(short, key=lambda i: (down[i] - units[i], i))[:missing]:
        down[i] += 1
    return [c / scale for c in down]


# every finite float's digits and the shown decimals (the default context's 28 digits refused 1e21: any
# number a page shows through ``num``, e.g. an account's ``seats`` a write key sent as 1e30, was a 500)
_WIDE = Context(prec=400, Emax=1000, Emin=-1000)


def cut(value: float, places: int = 1) -> float:
    """``value`` cut (towards −∞) to ``places`` decimals: 59.996 → 59.9, 60.0 → 60.0, 0.1 + 0.2 → 0.3.

    Cut from the shortest decimal that reads back as the float (``repr``), not from the float's binary
    value: the threshold 0.3 is the float 0.299999999999999988…, and a score equal to it is 0.3, not 0.2.
    So ``cut(x, p) >= t`` exactly when ``x >= t`` for a threshold ``t`` of at most ``p`` decimals, but
    for a value within a millionth of a shown unit below ``t``: that is ``t`` with float noise (1 + 1/3 +
    1/3 + 1/3 is 1.9999999999999998; a ledger of those lines shows 2.00, as ``apportion`` reads it). A score,
    fit or engagement score is never in that margin: the query keeps it to a millionth
    (``compile.dialects.Quantized``), so a score shown at a threshold is at it for every gate."""
    if not math.isfinite(value):
        return float(value)
    exact = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-places - _NOISE), context=_WIDE)
    down = exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_FLOOR, context=_WIDE)
    return float(down) + 0.0  # −0.0 is 0.0


def cut_text(value: float | None, places: int = 1, grouping: bool = False) -> str:
    """``value`` as a screen shows it: cut to ``places`` decimals (``cut``); "—" for None."""
    if value is None:
        return "—"
    return f"{cut(value, places):{',' if grouping else ''}.{places}f}"


def shown_change(after: float, before: float, places: int = 1) -> float:
    """How much a score moved, as a screen shows it: the difference of the two scores as shown (``cut``),
    so the score before as shown plus the change is the score after as shown (24.09 → 30.01 is 24.0 →
    30.0, +6.0; the raw 5.92 read +5.9 rounded or cut beside them)."""
    return round(cut(after, places) - cut(before, places), places) + 0.0  # −0.0 is 0.0


def shown_lines(ledger: Ledger) -> list[float]:
    """The score points of the ledger's lines as every screen shows them (two decimals), in the ledger's
    order, adding up to its score as shown; of lines tied for a rounding unit, the earlier in the ledger
    (the model's order) gets it, whatever order a screen then lists them in."""
    return apportion([line.score_points for line in ledger.lines], ledger.score)
