"""Learn, evaluate and backtest: points models measured against (and learned from) real outcomes.

features     what a learned feature reads: an attribute, an event count within a window, a recency
labels       censoring-aware labels from the outcomes table
dataset      learning rows from a flat CSV; holdout by a hash of the row key
store_data   point-in-time rows from the store (event features through a probe model's compiled query)
binning      supervised binning (numeric intervals, category groups, a missing bin), weight of evidence
checks       minimum outcomes and leakage guards
interactions pairs of attribute features with evidence per cell (bin × bin), chosen greedily
scorecard    the estimator: bins → weight of evidence → logistic regression → integer points; ``table()``
to_model     a fitted scorecard as a normal model YAML
challenger   LightGBM / HistGradientBoosting on the same rows and every feature offered
metrics      ROC-AUC, PR-AUC, gains, capture, calibration and ECE, rule lift, PSI
evaluate     a model scored by the compiled query against outcomes
train        learn: fit on the training rows, measure on the holdout beside the challenger
backtest     replay MQLs per week for a candidate against a baseline; threshold advice
report_html  self-contained HTML reports with inline SVG plots
sales_feedback  sales decisions as evidence: acceptance per model version, rule lift on sales judgement
review       proposals (remove or re-weight a rule, move the MQL threshold), each backtested; drafts
health       scheduled checks (drift, calibration, MQL volume, acceptance) raising alerts into the outbox
shadow_compare  a shadow version beside the active one on the same leads, now and replayed since its start
"""
