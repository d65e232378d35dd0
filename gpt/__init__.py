"""gpt: GPT-2-style models, tokenizers, data, training, sampling and a CLI, built only on minigrad.

Reading order: model.py, moe.py (sparse experts), tokenizer.py, data.py, genres.py (a labelled data set), train.py,
checkpoint.py, pretrained.py (a base to fine-tune), sample.py, hf.py (GPT-2's weights in Hugging
Face's layout; then minigrad/nn/lora.py to fine-tune them), logprobs.py, preferences.py, reward.py,
ppo.py, dpo.py (alignment: a reward model from preference pairs, PPO against it, DPO without it),
quantize.py, distill.py, prune.py (making a model smaller), t5.py (T5's text-to-text recipe),
cli.py (train, sample, export, bench, plot); bench.py, torch_gpt.py and plot.py are tools around them. The tour of the
whole project starts with the minigrad package and reaches here after the engine.

Read next: model.py.
"""
