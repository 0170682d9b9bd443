"""Taxonomy: the topic tree, its axes and seeds, and the plan of what to generate."""

from distill.taxonomy.load import LoadedTaxonomy, TreeNode, load_taxonomy
from distill.taxonomy.plan import build_plan, leaf_quotas, limit_plan, with_per_leaf

__all__ = ["LoadedTaxonomy", "TreeNode", "build_plan", "leaf_quotas", "limit_plan", "load_taxonomy",
           "with_per_leaf"]
