"""Keys and values of prompt prefixes already computed, reused by every later prompt that starts the same way.

The prompts of a taxonomy share long beginnings: the instruction step's system turn is the same for
every item (255 tokens on medical.yaml), the answer step's system prompt too (174), and items of one
specialty often show the same seed turns. Measured on the 186 medical items, an unbounded cache
leaves 32% of the instruction prompts' tokens and 44% of the answer prompts' to compute.

Prompts are cut into blocks of `block` tokens. A block is found by its parent block and its own tokens
(a trie, so equal keys mean equal prefixes, never a hash collision); a lookup walks from the first
block and stops at the first miss. Blocks are kept least recently used first and evicted past
`max_bytes`; a lookup or insert touches a path from its deepest block up, so a parent is never older
than its children and is evicted after them.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

ROOT = 0


class PrefixCache:
    def __init__(self, max_bytes: int, block: int = 16):
        self.max_bytes, self.block = max_bytes, block
        self.bytes = 0
        self._ids: dict[tuple[int, tuple[int, ...]], int] = {}  # (parent id, block tokens) -> block id
        self._blocks: OrderedDict[int, tuple[tuple[int, tuple[int, ...]], torch.Tensor]] = OrderedDict()
        self._next = ROOT + 1
        self.hits = self.lookups = 0  # tokens found, tokens asked for: the reuse a run got

    def lookup(self, tokens: list[int]) -> list[torch.Tensor]:
        """The stored blocks that begin `tokens`, in order (each [layers, 2, kv_heads, block, head_dim])."""
        found, parent = [], ROOT
        for start in range(0, len(tokens) - self.block + 1, self.block):
            node = self._ids.get((parent, tuple(tokens[start:start + self.block])))
            if node is None:
                break
            found.append(node)
            parent = node
        self._touch(found)
        self.lookups += len(tokens)
        self.hits += len(found) * self.block
        return [self._blocks[node][1] for node in found]

    def insert(self, tokens: list[int], kv: torch.Tensor) -> None:
        """Store every whole block of `tokens` not yet stored; `kv` holds their keys and values along dim 3."""
        if self.max_bytes <= 0:
            return
        path, parent = [], ROOT
        for start in range(0, len(tokens) - self.block + 1, self.block):
            key = (parent, tuple(tokens[start:start + self.block]))
            node = self._ids.get(key)
            if node is None:
                node = self._next
                self._next += 1
                block = kv[:, :, :, start:start + self.block].clone()
                self._ids[key] = node
                self._blocks[node] = (key, block)
                self.bytes += block.numel() * block.element_size()
            path.append(node)
            parent = node
        self._touch(path)
        self._evict(keep=set(path))

    def _touch(self, path: list[int]) -> None:
        for node in reversed(path):  # deepest first, so the root end of the path is the most recent
            self._blocks.move_to_end(node)

    def _evict(self, keep: set[int]) -> None:
        while self.bytes > self.max_bytes and self._blocks:
            node, (key, block) = next(iter(self._blocks.items()))
            if node in keep:  # the prompt just stored is larger than the whole cache: keep what fits
                break
            del self._blocks[node]
            del self._ids[key]
            self.bytes -= block.numel() * block.element_size()
