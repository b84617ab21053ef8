"""``kind: hf`` with ``task: causal-lm``: a local ``AutoModelForCausalLM`` folder and its own tokenizer,
read as a language-model teacher (the interface of :class:`xdistill.teachers.gpt.GPTTeacher`).

    - name: tiny-gpt2
      kind: hf
      task: causal-lm
      path: models/tiny-gpt2            # config.json, weights, tokenizer files (save_pretrained)
      max_length: 256                   # the context it is scored with (capped by the model's positions)

Nothing is downloaded. Documents start from the tokenizer's BOS token (GPT-2 style tokenizers name
their end-of-text token as BOS); a tokenizer without one scores a document's first token under a
uniform distribution over the vocabulary.
"""

from __future__ import annotations

import numpy as np
import torch

from xdistill.errors import XDistillError
from xdistill.models.tokenizer import (
    byte_level_alphabet,
    fallback_tokens,
    spans_from_offsets,
    spelled_bytes,
    vocabulary_identity,
)
from xdistill.teachers.base import TeacherOutput, TeacherSpec
from xdistill.teachers.hf import _FolderTeacher, _import_transformers


class HFTokenizer:
    """A transformers fast tokenizer behind :class:`xdistill.models.tokenizer.BPETokenizer`'s interface."""

    def __init__(self, tokenizer, vocab_size: int) -> None:
        if not getattr(tokenizer, "is_fast", False):
            raise XDistillError(f"The tokenizer '{type(tokenizer).__name__}' is not a fast tokenizer, so it gives no "
                                "offsets. Save the model with its tokenizer.json (a fast tokenizer).")
        self.tokenizer = tokenizer
        self.vocab_size = vocab_size
        self.bos_id = tokenizer.bos_token_id
        self.identity = vocabulary_identity(tokenizer.get_vocab())
        self.source = getattr(tokenizer, "name_or_path", "")
        self._fallback = fallback_tokens(tokenizer.get_vocab(), vocab_size)

    def encode(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        encoded = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = np.asarray(encoded["input_ids"], dtype=np.int64)
        chars = np.asarray(encoded["offset_mapping"], dtype=np.int64).reshape(-1, 2)
        return ids, spans_from_offsets(ids, chars, text, self._fallback)

    def token_bytes(self) -> list[bytes | None]:
        """The bytes each id spells (None for special tokens), for alignment across vocabularies."""
        vocab = self.tokenizer.get_vocab()
        alphabet = byte_level_alphabet()
        special = set(self.tokenizer.all_special_tokens)
        byte_level = all(ch in alphabet for token in vocab if token not in special for ch in token)
        return spelled_bytes(vocab, self.vocab_size, special, byte_level, self._fallback)

    def decode(self, ids) -> str:
        return self.tokenizer.decode([int(i) for i in ids], skip_special_tokens=True)


class HFCausalLMTeacher(_FolderTeacher):
    """transformers' AutoModelForCausalLM with its tokenizer: next-token logits over its own vocabulary."""

    kind = "hf"
    language_model = True

    def __init__(self, spec: TeacherSpec, device: str = "cpu") -> None:
        super().__init__(spec, device)
        self.domain = spec.domain
        self._tokenizer = None
        self._config = None

    def _load_config(self):
        if self._config is None:
            transformers = _import_transformers()
            try:
                self._config = transformers.AutoConfig.from_pretrained(str(self.folder), local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise self._load_error(exc) from exc
        return self._config

    def setup(self) -> None:
        if self.model is not None:
            return
        transformers = _import_transformers()
        try:
            model = transformers.AutoModelForCausalLM.from_pretrained(str(self.folder), local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise self._load_error(exc) from exc
        self.model = model.eval().to(self.device)

    @property
    def tokenizer(self) -> HFTokenizer:
        if self._tokenizer is None:
            transformers = _import_transformers()
            try:
                loaded = transformers.AutoTokenizer.from_pretrained(str(self.folder), local_files_only=True)
            except (OSError, ValueError, KeyError) as exc:
                raise self._load_error(exc) from exc
            self._tokenizer = HFTokenizer(loaded, self.vocab_size)
        return self._tokenizer

    @property
    def vocab_size(self) -> int:
        return int(self._load_config().vocab_size)

    @property
    def context(self) -> int:
        config = self._load_config()
        positions = getattr(config, "n_positions", None) or getattr(config, "max_position_embeddings", None)
        return int(min(self.options.max_length, positions)) if positions else int(self.options.max_length)

    @torch.inference_mode()
    def token_logits(self, ids: torch.Tensor) -> torch.Tensor:
        self.setup()
        return self.model(input_ids=ids.to(self.device)).logits.float().cpu()

    def outputs(self, batch) -> TeacherOutput:
        raise XDistillError(f"Teacher '{self.name}' is a causal language model (task: causal-lm): it serves tasks "
                            "of kind 'language-modeling'. Use 'task: classification' to read it as a text encoder.")
