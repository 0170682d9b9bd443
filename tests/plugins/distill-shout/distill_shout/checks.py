import re


def no_digits(example, **args):
    """Shouted sentences carry no numbers: a string says what is wrong, None passes."""
    found = re.search(r"\d+", example.response.split("(")[0])
    return f"a number ({found.group(0)}) in {example.response[:40]!r}" if found else None
