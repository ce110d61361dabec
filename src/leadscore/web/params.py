"""Query parameters several pages share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query

from leadscore.api.deps import SCORE_PICKED

# the named score a report reads; empty: the primary score (the picker's first option sends "")
ScoreParam = Annotated[str, Query(max_length=63, pattern=SCORE_PICKED)]
# the same, sent by a form (the model page's draft: the score it is validated, backtested and published as)
ScoreField = Annotated[str, Form(max_length=63, pattern=SCORE_PICKED)]
