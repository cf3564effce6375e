"""``onboarding demo``: the whole programme on an embedded default."""

from __future__ import annotations

import click


@click.command("demo")
@click.option(
    "--dir",
    "directory",
    default="demo-output",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the demo database, input files, outbox and HTML report.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Build even where a database the demo did not create is: it is moved to "
    "DIR/replaced-<time>/ first.",
)
def demo_cmd(directory: str, force: bool) -> None:
    """Build a demo: the 98 municipalities, the deck's picture of 31 March 2021, a quarter.

    Writes a fresh database, the input files it imports, the reminders of a simulated quarter
    (as .eml files, never sent) and the HTML rollout report to DIR; prints the rollout report
    and what to try next. Deterministic, offline, a few seconds.

    It replaces only its own output: an earlier demo in DIR is replaced (and it says so);
    a database it did not create, or its file names without its database, make it stop
    unless --force, which moves them to DIR/replaced-<time>/ first.

    Example:

        onboarding demo --dir demo-output
    """
    from onboarding import demo

    demo.run(directory, echo=click.echo, force=force)
