"""InstructLab taxonomies (trees of qna.yaml files): converted in memory wherever a taxonomy path is accepted
(`load.py`), or imported into a taxonomy file with its seed files (`importer.py`, `distill taxonomy
import-instructlab`); `read.py` reads and checks each qna.yaml, `documents.py` finds the knowledge documents and
`convert.py` turns the tree into a taxonomy."""
