"""gpt: GPT-2-style models, tokenizers, data, training, sampling and a CLI, built only on minigrad.

Reading order: model.py, tokenizer.py, data.py, train.py (with checkpoint.py), sample.py, cli.py;
bench.py, torch_gpt.py and plot.py are tools around them.
"""
