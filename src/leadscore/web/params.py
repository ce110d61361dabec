"""Query parameters several pages share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Form, Query

from leadscore.model.lifecycle import SCORE_NAME

# the named score a report reads; empty: the primary score (the picker's first option sends "")
ScoreParam = Annotated[str, Query(max_length=63, pattern=f"^(?:{SCORE_NAME.strip('^$')})?$")]
# the same, sent by a form (the model page's draft: the score it is validated, backtested and published as)
ScoreField = Annotated[str, Form(max_length=63, pattern=f"^(?:{SCORE_NAME.strip('^$')})?$")]
