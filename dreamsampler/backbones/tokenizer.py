"""Offline CLIP tokenizer files: a small whole-word BPE vocabulary written by code, no download.

`transformers.CLIPTokenizer` needs a ``vocab.json`` and a ``merges.txt``. For the tiny presets and the shipped
shapes prior we build a valid BPE whose merges assemble each word of a given word list left to right. BPE
applies merges in global rank order, so a word whose pieces were merged differently for an earlier word can
end up as a few tokens (e.g. ``green`` after ``red``); the tokenization is deterministic and the shipped prior
was trained with exactly these files, so the algorithm is kept as is (changing it changes the prior's weights).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from transformers import CLIPTokenizer

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()&/+"


def clip_vocab_and_merges(words: Iterable[str]) -> tuple[dict[str, int], list[str]]:
    """Vocabulary and merge list of a BPE built word by word from ``words`` (see the module docstring)."""
    tokens: list[str] = []
    for c in _CHARS:
        tokens += [c, c + "</w>"]
    merges: list[str] = []
    seen = set(tokens)
    for word in dict.fromkeys(w.lower() for w in words):
        if not word or not set(word) <= set(_CHARS):
            raise ValueError(f"tokenizer word {word!r}: only characters of {_CHARS!r} are allowed")
        prefix = word[0]
        for i, ch in enumerate(word[1:], start=1):
            nxt = ch + "</w>" if i == len(word) - 1 else ch
            merged = prefix + nxt
            rule = f"{prefix} {nxt}"
            if merged not in seen:
                seen.add(merged)
                tokens.append(merged)
            if rule not in merges:
                merges.append(rule)
            prefix = merged
    tokens += [BOS, EOS]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def write_clip_tokenizer(folder: str | Path, words: Iterable[str], max_length: int = 77) -> CLIPTokenizer:
    """Write ``vocab.json``/``merges.txt`` for ``words`` into ``folder`` and return the loaded tokenizer."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = clip_vocab_and_merges(words)
    (folder / "vocab.json").write_text(json.dumps(vocab, indent=0))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    tok = CLIPTokenizer(
        str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length, pad_token=EOS
    )
    tok.save_pretrained(str(folder))
    return tok


#: Words that tokenize as one token in the offline presets (any other text is spelt out in characters).
PRESET_WORDS = (
    "a an the of on in with and photo painting picture image drawing icon "
    "red green blue yellow purple orange black white pink brown gray grey "
    "circle square triangle star heart shape background dog cat zebra horse tiger lion bird car house tree"
).split()


def preset_tokenizer(max_length: int) -> CLIPTokenizer:
    """The offline tokenizer of the presets (``PRESET_WORDS``), padded to ``max_length`` tokens."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        return write_clip_tokenizer(Path(tmp), PRESET_WORDS, max_length=max_length)
