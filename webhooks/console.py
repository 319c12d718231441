"""The ``kustom-app`` console script (pyproject ``[project.scripts]``): the operator commands
of webhooks/operators.py, with the app built from the environment as
``flask --app webhooks.app kustom`` builds it. Apart from both so that neither imports the
other's module back."""

from __future__ import annotations

from flask.cli import ScriptInfo

from webhooks.app import create_app
from webhooks.operators import cli


def main() -> None:
    cli.main(prog_name="kustom-app", obj=ScriptInfo(create_app=create_app))
