"""Query parameters several pages share."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from leadscore.model.lifecycle import SCORE_NAME

# the named score a report reads; empty: the primary score (the picker's first option sends "")
ScoreParam = Annotated[str, Query(max_length=63, pattern=f"^(?:{SCORE_NAME.strip('^$')})?$")]
