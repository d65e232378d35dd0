"""Exercises: write each fused op's backward yourself, and let a checker say which term is wrong.

Each op whose backward minigrad writes by hand (linear, softmax, cross_entropy, layer_norm,
attention, gelu, embedding) is an exercise. A learner runs

    python -m minigrad.exercises list                   # the exercises, the terms each asks for
    python -m minigrad.exercises start layer_norm       # writes exercises/layer_norm.py (--dir DIR elsewhere)
    # ... fill in LayerNorm.backward_terms in that file ...
    python -m minigrad.exercises check layer_norm       # --file PATH if it lives elsewhere

`start` never overwrites a file: the learner's work stays theirs. The stub holds the op as a
Function subclass: its forward, given, one line per step, keeping what backward needs (mostly what
the project's op keeps: layer norm xhat and rstd, softmax its output, attention P); the backward
the engine calls, given, which hands on the gradients; and `backward_terms(dout)`, left to write,
which returns the gradient in named pieces, in the order backward computes them. A piece is either
an input's gradient (dx, dweight), a step of the chain (dxhat; attention's dV, dP, dS, dQ, dK),
or one term of a sum, named dX_via_Y: the part of dX that flows through Y with the rest held
fixed. Layer norm's

    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat))

is dx_direct + dx_via_mean + dx_via_rstd, the three ways x reaches xhat. Comments above
backward_terms give each piece's shape and the steps of the derivation, not the answer. `check` runs, in float64: the forward against minigrad's op, each term against
the reference, in the order backward computes them (the first wrong one is named, with its shapes
or its largest error), the gradients through minigrad's engine against minigrad's op, and finite
differences with a random cotangent. Exit code 0 when all pass, 1 otherwise.

The solutions are the project's own ops (`list` and every failure name the file and the method);
nothing here restates them. Read the matching chapter of the course in docs/chapters/ first (`list`
names it for each exercise): matmul and the linear layer (03_matmul_linear.md), softmax and
cross-entropy (04_softmax_cross_entropy.md), layer norm term by term (05_layer_norm.md), attention
with masks (06_attention.md), and one GPT training step (07_gpt_step.md) for gelu and embedding.

Files: catalog.py (the exercises: terms, cases, solutions), references.py (each term's reference
value, by autograd), checker.py (the checks and their messages), cli.py (the commands), stubs/ (the
files start writes).

This is the last stop of the code tour. Read next: docs/chapters/README.md, the course these
exercises go with.
"""
