"""`distill improve`: parse options, call `distill.improve.rounds.improve`, print where the report went."""

from __future__ import annotations

from pathlib import Path

import typer


def improve_command(
    config: Path = typer.Argument(..., help="A `distill run` config (taxonomy, generate, train, eval, improve)."),
    rounds: int = typer.Option(2, "--rounds", min=1, help="Rounds after round 0 (round 0 is `distill run`)."),
    budget_usd: float | None = typer.Option(None, "--budget-usd", min=0, help="Start no round once the teacher has "
                                            "cost this much in all (an API teacher's price; a local one costs 0)."),
    dpo: bool | None = typer.Option(None, "--dpo/--no-dpo", help="DPO on the student's failed attempts after SFT "
                                    "(as improve.dpo in the config)."),
) -> None:
    """Rounds of generate -> curate -> train -> eval, each steered by the last: more data where the student is
    weak, conditioned on its failures; every round scored on the held-out split frozen at round 0."""
    from rich.console import Console

    from distill.improve.rounds import improve

    console = Console()
    improve(config, rounds, budget_usd=budget_usd, dpo=dpo,
            say=lambda line: console.print(line, highlight=False, markup=False, soft_wrap=True))


def register(app: typer.Typer) -> None:
    app.command("improve")(improve_command)
