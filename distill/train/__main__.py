"""`python -m distill.train DIR ...`: the `distill train` command alone, for `accelerate launch -m`.

    accelerate launch --config_file configs/train-accelerate-multi-gpu.yaml -m distill.train runs/x --student ID
"""

import typer

from distill.cli import run_app
from distill.train.commands import train_command


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    run_app(app)  # usage errors, Ctrl-C and the machine's errors as `distill train` has them


if __name__ == "__main__":
    main()
