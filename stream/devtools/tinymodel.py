"""A small random-weight BERT with a Chinese character vocabulary, built offline.

Used by tests and by the offline demo when no real encoder is available locally. Its
embeddings are deterministic but carry no meaning, so its clusters carry none either.
"""

from __future__ import annotations

from pathlib import Path

_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_PLACEHOLDERS = ["[PHONE]", "[EMAIL]", "[ID]", "[CARD]", "[ADDRESS]"]


def _vocabulary() -> list[str]:
    ascii_tokens = [chr(c) for c in range(33, 127)]
    continuations = [f"##{c}" for c in "0123456789abcdefghijklmnopqrstuvwxyz"]
    ascii_words = "the a and is of to in for it with on good bad iphone ipad pc usb wifi".split()
    cjk_punct = list("，。！？、；：“”‘’（）《》…—～·【】")
    cjk = [chr(c) for c in range(0x4E00, 0x9FA6)]
    seen: dict[str, None] = {}
    for token in [*_SPECIAL, *_PLACEHOLDERS, *ascii_tokens, *continuations, *ascii_words, *cjk_punct, *cjk]:
        seen.setdefault(token, None)
    return list(seen)


def build_tiny_bert(path: str | Path, *, hidden: int = 64, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    """Write a BertModel + fast tokenizer to ``path`` and return it (idempotent for a seed)."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    vocab = {token: i for i, token in enumerate(_vocabulary())}
    tokenizer = BertTokenizerFast(vocab=vocab, do_lower_case=True, tokenize_chinese_chars=True)
    tokenizer.add_special_tokens({"additional_special_tokens": _PLACEHOLDERS})
    tokenizer.model_max_length = 512
    tokenizer.save_pretrained(out)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=hidden * 4,
        max_position_embeddings=512,
    )
    torch.manual_seed(seed)
    model = BertModel(config)
    model.eval()
    model.save_pretrained(out)
    return out
