"""The ``tickdb`` command line. Each component registers its own commands here."""

from __future__ import annotations

import sys

import typer

from tickdb.up import up
from tickerplant.cli import register as register_tickerplant

app = typer.Typer(
    name="tickdb",
    help="A kdb+-style tick system: tickerplant, RDB, HDB and gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

register_tickerplant(app)
app.command("up")(up)
__import__("gateway.cli").cli.register(app)
__import__("hdb.cli").cli.register(app)
__import__("rdb.cli").cli.register(app)
__import__("orders.cli").cli.register(app)
__import__("fix.cli").cli.register(app)
__import__("tickdb.keys_cli").keys_cli.register(app)


def main() -> None:
    from tickdb.listen import AddressInUse

    try:
        app()
    except AddressInUse as exc:
        # A configuration problem: one line naming the port and the setting, no traceback.
        print(f"tickdb: {exc}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
