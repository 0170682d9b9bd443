"""distill: taxonomy-driven synthetic data, curation and student distillation.

The Python API (distill/api.py): `distill.generate(...)`, `await distill.agenerate(...)`, `distill.curate(...)`,
`distill.split(...)`, `distill.review(...)`, `distill.train(...)`, `distill.evaluate(...)`,
`distill.load_taxonomy(...)`. Nothing heavy is imported until a function is called (the CLI starts from here).
"""

import importlib
import types

__version__ = "0.1.0"

_LAZY = ("agenerate", "split", "load_taxonomy")


class _StageModule(types.ModuleType):
    """A stage's package that is also the stage's API function.

    `distill.generate` must be both the subpackage (`distill.generate.runner`) and the function a user calls;
    Python sets a package's attribute to its subpackage on import, so a plain function of that name would be
    replaced by the module as soon as the stage ran. Calling the module calls `distill.api.<stage>` instead.
    """

    def __call__(self, *args, **kwargs):
        from distill import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


for _stage in ("generate", "curate", "review", "train", "evaluate"):
    importlib.import_module(f"{__name__}.{_stage}").__class__ = _StageModule


def __getattr__(name: str):
    if name in _LAZY:
        from distill import api

        return getattr(api, name)
    raise AttributeError(f"module 'distill' has no attribute {name!r}")
