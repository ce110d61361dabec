"""The ``leadscore`` command line (Typer).

``main.py`` imports every command module to register its commands, so a command module is imported by
every command, ``leadscore --help`` included. Each one therefore imports only typer, rich, the standard
library and other ``cli`` modules at module level, and what its command needs inside the command
function::

    @app.command("tick")
    def tick(db: Db = None) -> None:
        \"\"\"One line of help.\"\"\"
        from leadscore.lifecycle.runner import run_round  # here, not at the top of the module

        with open_store(db) as store:
            ...

Names used in a command's signature are evaluated by Typer when the app is built, so they must be light
(``options.Db``, ``pathlib.Path``, constants from a light module such as ``learn/defaults.py``); a helper's
annotations can name heavy types under ``if TYPE_CHECKING:``. ``tests/test_cli_startup.py`` fails when
``--help`` or ``validate`` loads the store, the web stack or the learning libraries.
"""
