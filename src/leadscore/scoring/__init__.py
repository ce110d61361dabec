"""Scoring operations on the store: run the compiled model, keep current scores, ledgers and history."""
