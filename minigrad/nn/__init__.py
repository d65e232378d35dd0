"""Neural-network building blocks with PyTorch's names and layouts.

Reading order: module.py (Module, Parameter, containers), layers.py, attention.py (MultiheadAttention),
transformer.py (the encoder-decoder Transformer), utils.py (gradient clipping), lora.py (low-rank
adapters for fine-tuning; the tour reaches it from the GPT's Hugging Face loader, whose weights
it adapts).

nn.functional is minigrad.functional again, under PyTorch's path (torch.nn.functional).
"""
from minigrad.nn import functional, utils
from minigrad.nn.attention import MultiheadAttention
from minigrad.nn.layers import (
    GELU,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    LayerNorm,
    Linear,
    MSELoss,
    NLLLoss,
    ReLU,
    RMSNorm,
    SiLU,
    Softplus,
    Tanh,
)
from minigrad.nn.lora import LoRALinear, apply_lora, lora_state_dict, load_lora_state_dict, merge_lora, unmerge_lora
from minigrad.nn.module import Module, ModuleDict, ModuleList, Parameter, Sequential
from minigrad.nn.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = ["Module", "Parameter", "Sequential", "ModuleList", "ModuleDict", "Linear", "Embedding", "LayerNorm",
           "RMSNorm", "Dropout", "GELU", "ReLU", "Tanh", "SiLU", "Softplus", "CrossEntropyLoss", "NLLLoss", "MSELoss",
           "BCEWithLogitsLoss", "functional", "utils", "LoRALinear", "apply_lora", "lora_state_dict",
           "load_lora_state_dict", "merge_lora", "unmerge_lora", "MultiheadAttention", "TransformerEncoderLayer",
           "TransformerDecoderLayer", "TransformerEncoder", "TransformerDecoder", "Transformer"]
