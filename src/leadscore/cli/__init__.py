"""The ``leadscore`` command line (Typer)."""
