"""`python -m distill.train DIR ...`: the `distill train` command alone, for `accelerate launch -m`.

    accelerate launch --config_file configs/train-accelerate-multi-gpu.yaml -m distill.train runs/x --student ID
"""

import sys

import typer

from distill.errors import DistillError
from distill.train.commands import train_command


def main() -> None:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    app.command()(train_command)
    try:
        app(standalone_mode=False)
    except DistillError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
