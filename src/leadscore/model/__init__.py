"""The scoring model as frozen, validated data, with YAML load/dump and positioned errors."""

from leadscore.model.conditions import AllOf, AnyOf, Compare, Condition, Not, walk
from leadscore.model.durations import duration_seconds
from leadscore.model.lifecycle import Action, Gate, Lifecycle, Segment, Stage, Team, Transition
from leadscore.model.rules import (
    Burst,
    Exclude,
    Machine,
    Count,
    CountRule,
    DistinctProperty,
    EachRule,
    EventMatch,
    EventRule,
    FitRule,
    Group,
    OnceRule,
    RatioRule,
    RecencyRule,
    RecencyStep,
    ThresholdRule,
)
from leadscore.model.scoring_model import NamedList, Scale, ScoringModel
from leadscore.model.yaml_io import dump_model, load_model, loads_model

__all__ = [
    "Action",
    "AllOf",
    "AnyOf",
    "Burst",
    "Compare",
    "Condition",
    "Count",
    "CountRule",
    "DistinctProperty",
    "EachRule",
    "EventMatch",
    "EventRule",
    "Exclude",
    "FitRule",
    "Gate",
    "Group",
    "Lifecycle",
    "Machine",
    "NamedList",
    "Not",
    "OnceRule",
    "RatioRule",
    "RecencyRule",
    "RecencyStep",
    "Scale",
    "ScoringModel",
    "Segment",
    "Stage",
    "Team",
    "ThresholdRule",
    "Transition",
    "dump_model",
    "duration_seconds",
    "load_model",
    "loads_model",
    "walk",
]
