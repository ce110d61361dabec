"""Defaults of ``leadscore learn`` kept apart from the learning code, so that the command line can show
them in its help without loading numpy or scikit-learn."""

HOT_SHARE = 0.1  # the hottest tenth of training leads is 'hot' in the learned model ...
WARM_SHARE = 0.2  # ... and the next fifth 'warm'; both are options of `leadscore learn`
