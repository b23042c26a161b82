"""The slice of transformers' tokenizer API autocomplete uses, on the `tokenizers` library alone (no torch, no
transformers: a cold call reads tokenizer.json in milliseconds)."""

from __future__ import annotations

from pathlib import Path


class Tokenizer:

    def __init__(self, directory: Path, config: dict):
        from tokenizers import Tokenizer as Fast

        self._tok = Fast.from_file(str(directory / "tokenizer.json"))
        self.bos_token_id = _first(config.get("bos_token_id"))
        self.eos_token_id = _first(config.get("eos_token_id"))

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def __len__(self) -> int:
        return self._tok.get_vocab_size()

    @property
    def all_special_ids(self) -> list[int]:
        return [i for i, token in self._tok.get_added_tokens_decoder().items() if token.special]

    def decode(self, ids: list[int], skip_special_tokens: bool = True, clean_up_tokenization_spaces: bool = False) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def batch_decode(self, batch: list[list[int]], clean_up_tokenization_spaces: bool = False) -> list[str]:
        return self._tok.decode_batch(batch, skip_special_tokens=True)

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) or "" for i in ids]


def _first(value):
    """A config's token id, which some configs give as a list."""
    return value[0] if isinstance(value, list) and value else value
