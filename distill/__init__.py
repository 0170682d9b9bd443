"""distill: taxonomy-driven synthetic data, curation and student distillation."""

__version__ = "0.1.0"
