"""Offline CLIP tokenizer files, no download: CLIP's own 49 408-token vocabulary (for real weights loaded from a single
file), and a small whole-word BPE vocabulary written by code (for the presets and the shipped shapes prior).

`transformers.CLIPTokenizer` needs a ``vocab.json`` and a ``merges.txt``. For the tiny presets and the shipped
shapes prior we build a valid BPE whose merges assemble each word of a given word list left to right. BPE
applies merges in global rank order, so a word whose pieces were merged differently for an earlier word can
end up as a few tokens (e.g. ``green`` after ``red``); the tokenization is deterministic and the shipped prior
was trained with exactly these files, so the algorithm is kept as is (changing it changes the prior's weights).
"""

from __future__ import annotations

import gzip
import json
import tempfile
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
    with tempfile.TemporaryDirectory() as tmp:
        return write_clip_tokenizer(Path(tmp), PRESET_WORDS, max_length=max_length)


#: CLIP's byte-pair merge list, vendored (see ``assets/clip_bpe/README.md``).
CLIP_BPE = Path(__file__).resolve().parent.parent / "assets" / "clip_bpe" / "bpe_simple_vocab_16e6.txt.gz"


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map of the 256 byte values to printable characters (bytes that are printable map to
    themselves, the others to the code points from 256 on, in order)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    others = [b for b in range(256) if b not in printable]
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + i) for i, b in enumerate(others)}}


def clip_bpe_tokenizer(folder: str | Path | None = None, pad_token: str = EOS, max_length: int = 77) -> CLIPTokenizer:
    """CLIP's real tokenizer (the one of openai/clip-vit-large-patch14 and OpenCLIP bigG) from the vendored merge
    list: the byte alphabet, each with ``</w>``, the 48 894 merges, then ``<|startoftext|>`` / ``<|endoftext|>``.
    ``pad_token``: ``<|endoftext|>`` for CLIP-L, ``!`` for the OpenCLIP bigG encoder of SDXL and SD3. Written to
    ``folder`` (a temporary one when None) and loaded from there."""
    merges = gzip.open(CLIP_BPE).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    alphabet = list(_bytes_to_unicode().values())
    tokens = alphabet + [c + "</w>" for c in alphabet] + ["".join(m.split()) for m in merges] + [BOS, EOS]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(folder or tmp)
        out.mkdir(parents=True, exist_ok=True)
        (out / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
        (out / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
        tok = CLIPTokenizer(str(out / "vocab.json"), str(out / "merges.txt"), model_max_length=max_length,
                            pad_token=pad_token)
        tok.save_pretrained(str(out))
        return tok
