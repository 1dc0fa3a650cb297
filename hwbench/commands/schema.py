"""``hwbench schema``: the JSON Schema of results files."""

from __future__ import annotations

import json

import click


@click.command()
def schema() -> None:
    """Print the JSON Schema of results files."""
    from ..records import json_schema

    click.echo(json.dumps(json_schema(), indent=1))


COMMANDS = (schema,)
