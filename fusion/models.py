"""The models fusion mode analyses: a Hugging Face architecture built offline from its
`transformers` configuration class (random weights, nothing downloaded), or an nn.Module in the
user's file with example inputs from --shapes/--dtype."""
from __future__ import annotations

import inspect
import re

import torch

from nodes.errors import UserError

# name → (config class, model class, widths of the reference checkpoint, what those widths are)
ARCHITECTURES: dict[str, tuple[str, str, dict, str]] = {
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM",
              dict(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                   num_hidden_layers=28, vocab_size=152064, rms_norm_eps=1e-6, max_position_embeddings=32768),
              "Qwen2-7B"),
    "llama": ("LlamaConfig", "LlamaForCausalLM",
              dict(hidden_size=4096, intermediate_size=11008, num_attention_heads=32, num_key_value_heads=32,
                   num_hidden_layers=32, vocab_size=32000, rms_norm_eps=1e-5), "Llama-2-7B"),
    "mistral": ("MistralConfig", "MistralForCausalLM",
                dict(hidden_size=4096, intermediate_size=14336, num_attention_heads=32, num_key_value_heads=8,
                     num_hidden_layers=32, vocab_size=32000, rms_norm_eps=1e-5, sliding_window=None),
                "Mistral-7B"),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel",
             dict(n_embd=768, n_layer=12, n_head=12, n_positions=1024, vocab_size=50257), "GPT-2 (124M)"),
}
DISPLAY = {"qwen2": "Qwen2", "llama": "Llama", "mistral": "Mistral", "gpt2": "GPT-2"}
ALIASES = [(r"\bqwen-?2(\.5)?\b|\bqwen\b", "qwen2"), (r"\bllama-?\d?\b", "llama"), (r"\bmistral\b", "mistral"),
           (r"\bgpt-?2\b", "gpt2")]
# Batch and sequence length of an analysis unless --shapes says otherwise. Batch 2, not 1: the
# embedded generator specialises a size-1 dim of a task, and the kernels must serve any batch.
DEFAULT_TOKENS = (2, 1024)


def known_architectures() -> str:
    return ", ".join(DISPLAY.values())


def find_architecture(request: str) -> str | None:
    lowered = request.lower()
    return next((arch for pattern, arch in ALIASES if re.search(pattern, lowered)), None)


def named_model(request: str) -> str | None:
    """The word the request names as the model ('Analyze Falcon model ...' → 'Falcon')."""
    match = re.search(r"\banaly[sz]e\s+(?:the\s+|a\s+)?([\w.-]+)(?:\s+model)?", request, re.IGNORECASE)
    return match.group(1) if match else None


def require_architecture(request: str) -> str:
    arch = find_architecture(request)
    if arch is None:
        named = named_model(request)
        what = f"unknown architecture '{named}'" if named and named.lower() not in ("model", "my", "this") \
            else "no model architecture in the request"
        raise UserError(f"{what}: known architectures are {known_architectures()} "
                        "(or analyse your own model with --source FILE --target CLASS)")
    return arch


def hf_config(arch: str, *, layers: int | None = None, overrides: dict | None = None):
    import transformers

    config_class, _, widths, _ = ARCHITECTURES[arch]
    values = {**widths, **(overrides or {})}
    if layers is not None:
        values["n_layer" if arch == "gpt2" else "num_hidden_layers"] = layers
    config = getattr(transformers, config_class)(**values)
    config._attn_implementation = "sdpa"
    config.use_cache = False
    return config


def build_in_dtype(make, dtype: str) -> torch.nn.Module:
    """`make()` with `dtype` as the default: parameters are created in it (no fp32 copy ever
    exists, and fake parameters need no conversion)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(getattr(torch, dtype))
    try:
        return make().eval()
    finally:
        torch.set_default_dtype(previous)


def build_hf(arch: str, config, dtype: str = "float32") -> torch.nn.Module:
    """Random weights in `dtype`."""
    import transformers

    model_class = getattr(transformers, ARCHITECTURES[arch][1])
    return build_in_dtype(lambda: model_class(config), dtype)


def layer_count(config) -> int:
    return int(config.num_hidden_layers)


# -- a model in the user's file ------------------------------------------------------------------


def load_target(source_path: str, target: str | None):
    """The nn.Module class `target` of the file (or the one class no other class uses)."""
    from integration.checks import load_module_from_path

    module = load_module_from_path(source_path)
    classes = {name: obj for name, obj in vars(module).items()
               if inspect.isclass(obj) and issubclass(obj, torch.nn.Module) and obj.__module__ == module.__name__}
    if target:
        if target not in classes:
            raise UserError(f"{target} is not an nn.Module class of {source_path}; its classes: "
                            f"{', '.join(sorted(classes)) or 'none'}")
        return classes[target]
    sources = {name: inspect.getsource(cls) for name, cls in classes.items()}
    roots = [name for name in classes
             if not any(re.search(rf"\b{name}\b", src) for other, src in sources.items() if other != name)]
    if len(roots) != 1:
        raise UserError(f"cannot tell which model to analyse in {source_path}: pass --target, one of "
                        f"{', '.join(sorted(roots or classes))}")
    return classes[roots[0]]


INTEGER_NAMES = re.compile(r"ids$|^idx$|^tokens?$|index|^input_ids$")


def example_inputs(model: torch.nn.Module, shapes: list[list[int]], dtype: str, *, seed: int | None = None) -> list:
    """Inputs of the given shapes: float in `dtype`, except an input named like token ids or the
    first input of a model that starts with an embedding, drawn in [0, num_embeddings)."""
    params = [p for p in inspect.signature(model.forward).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    embeddings = [m.num_embeddings for m in model.modules() if isinstance(m, torch.nn.Embedding)]
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    inputs = []
    for i, shape in enumerate(shapes):
        name = params[i].name if i < len(params) else ""
        integer = bool(INTEGER_NAMES.search(name)) or (i == 0 and embeddings and len(shape) <= 2)
        if integer:
            high = min(embeddings) if embeddings else 16
            inputs.append(torch.randint(0, high, tuple(shape), generator=generator))
        else:
            inputs.append(torch.randn(*shape, generator=generator).to(getattr(torch, dtype)))
    return inputs
