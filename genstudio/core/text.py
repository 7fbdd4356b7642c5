"""Text as token ids: a word-level tokenizer (Hugging Face ``tokenizers``' WordLevel model) trained
on a dataset's captions, kept by a run as its JSON text (never pickled).

Every caption becomes ``max_len`` ids: the words, then EOS, then PAD (id 0) up to ``max_len``.
EOS is always kept (a caption longer than ``max_len - 1`` words is truncated before it), so the
empty prompt "" is the one-token sequence [EOS]: the null caption of classifier-free guidance.
``padding_mask(ids)`` is True where a position is padding; text encoders and cross-attention
(``genstudio.core.nn.text``) ignore those positions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import torch

PAD, EOS, UNK = "[PAD]", "[EOS]", "[UNK]"
SPECIALS = (PAD, EOS, UNK)  # ids 0, 1, 2 in every tokenizer trained here


class Tokenizer:
    """Captions <-> (N, max_len) long tensors of word ids, padded with PAD = 0 after an EOS."""

    def __init__(self, tok: object, max_len: int) -> None:
        self.tok = tok
        self.max_len = int(max_len)
        self.pad_id = tok.token_to_id(PAD)  # type: ignore[attr-defined]
        self.eos_id = tok.token_to_id(EOS)  # type: ignore[attr-defined]
        self.unk_id = tok.token_to_id(UNK)  # type: ignore[attr-defined]
        if (self.pad_id, self.eos_id, self.unk_id) != (0, 1, 2):
            raise ValueError("tokenizer must have [PAD], [EOS], [UNK] as ids 0, 1, 2")

    @classmethod
    def train(cls, texts: Iterable[str], max_len: int) -> Tokenizer:
        """A WordLevel vocabulary of every lower-cased word in ``texts`` (specials first)."""
        from tokenizers import Tokenizer as HFTokenizer
        from tokenizers import models, normalizers, pre_tokenizers, trainers

        tok = HFTokenizer(models.WordLevel(unk_token=UNK))
        tok.normalizer = normalizers.Lowercase()
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.train_from_iterator(sorted(set(texts)), trainers.WordLevelTrainer(special_tokens=list(SPECIALS),
                                                                               min_frequency=1))
        return cls(tok, max_len)

    # -- persistence: JSON text ------------------------------------------------------------
    def to_json(self) -> str:
        """The tokenizer as JSON text (the library's own format plus ``max_len``)."""
        return json.dumps({"max_len": self.max_len, "tokenizer": json.loads(self.tok.to_str())})  # type: ignore

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        from tokenizers import Tokenizer as HFTokenizer

        d = json.loads(text)
        return cls(HFTokenizer.from_str(json.dumps(d["tokenizer"])), int(d["max_len"]))

    # -- use ---------------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return int(self.tok.get_vocab_size())  # type: ignore[attr-defined]

    @property
    def words(self) -> list[str]:
        """The vocabulary without the special tokens, in id order (prompt autocompletion)."""
        vocab = self.tok.get_vocab()  # type: ignore[attr-defined]
        return [w for w, _ in sorted(vocab.items(), key=lambda kv: kv[1]) if w not in SPECIALS]

    def encode(self, texts: Sequence[str] | str) -> torch.Tensor:
        """(N, max_len) long ids: words (unknown ones as UNK), EOS, then PAD."""
        if isinstance(texts, str):
            texts = [texts]
        out = torch.full((len(texts), self.max_len), self.pad_id, dtype=torch.long)
        for i, enc in enumerate(self.tok.encode_batch(list(texts))):  # type: ignore[attr-defined]
            ids = enc.ids[: self.max_len - 1] + [self.eos_id]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def decode(self, ids: torch.Tensor) -> list[str]:
        """Captions of (N, L) ids (everything from EOS on is dropped)."""
        out = []
        for row in ids.detach().cpu().long().tolist():
            words = row[: row.index(self.eos_id)] if self.eos_id in row else row
            out.append(self.tok.decode([w for w in words if w != self.pad_id], skip_special_tokens=False))  # type: ignore
        return out

    def padding_mask(self, ids: torch.Tensor) -> torch.Tensor:
        """True where ``ids`` is padding: every position after the first EOS."""
        return padding_mask(ids, self.eos_id)


def padding_mask(ids: torch.Tensor, eos_id: int = 1) -> torch.Tensor:
    """True after the first ``eos_id`` of each row (the EOS itself is kept). Defined by position, not
    by the pad id, so whatever the pad positions hold never reaches the model."""
    is_eos = (ids == eos_id).long()
    return (is_eos.cumsum(1) - is_eos) > 0
