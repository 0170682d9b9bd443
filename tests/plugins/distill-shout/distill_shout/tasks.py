from pathlib import Path

SHOUT = Path(__file__).with_name("shout.yaml")  # a distill.tasks entry point may name a task YAML file
