"""The Llama 3 reference engine: model (fairscale model-parallel layers, static per-slot KV cache),
checkpoint loaders (Meta, Hugging Face safetensors, GGUF), and continuous-batching generation.

Imports torch and fairscale; nothing outside this package imports it at module level.

Non-goals: no paged attention, no speculative decoding, no vision models, no training.
"""
