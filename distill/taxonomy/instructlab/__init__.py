"""InstructLab taxonomies (trees of qna.yaml files): imported into a taxonomy file with its seed files
(`distill taxonomy import-instructlab`), or converted in memory wherever a taxonomy path is accepted."""

from distill.taxonomy.instructlab.importer import ImportReport, import_instructlab, load_instructlab

__all__ = ["ImportReport", "import_instructlab", "load_instructlab"]
