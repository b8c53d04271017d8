"""The `staronnx` command: one thin module per subcommand, read like a table of contents."""

from __future__ import annotations

import typer

from . import advise, doctor, export, fleet, platform, plot, profile, report, split, sweep, trace, zoo

app = typer.Typer(
    name="staronnx",
    help="Which batch size gives the lowest worst-case latency at a query rate, on GPUs and CPU core groups.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"staronnx {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                              help="Print staronnx's version and exit.")) -> None:
    """Which batch size gives the lowest worst-case latency at a query rate, on GPUs and CPU core groups."""


app.add_typer(zoo.app, name="zoo")
app.add_typer(platform.app, name="platform")
app.command("profile")(profile.profile)
app.command("split")(split.split)
app.command("sweep")(sweep.sweep)
app.command("plot")(plot.plot)
app.command("report")(report.report)
app.command("export")(export.export)
app.command("advise")(advise.advise)
app.command("fleet")(fleet.fleet)
app.command("trace")(trace.trace)
app.command("doctor")(doctor.doctor)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
