"""The lifecycle: stages as a state machine over scores, the actions stage moves cause (webhooks, mail,
assignment, segments), sales feedback and outcomes, account stages and reports.

It sits above scoring and reads what scoring wrote (current scores, ledgers, history, threshold
crossings in ``score_events``); scoring never imports it. ``runner.LifecycleRunner`` is the worker.
"""
