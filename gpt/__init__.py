"""gpt: GPT-2-style models, tokenizers, data, training and sampling on minigrad (coming next)."""
