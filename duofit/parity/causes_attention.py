"""The causes of ``multi_head_attention`` differences between torch and Keras, and their predicates.

:data:`ATTENTION_CAUSES` joins the catalogue in :mod:`duofit.parity.causes`; each predicate
takes ``(spec_torch, spec_keras, strict)``. Every entry was verified in the installed sources
named in its ``source`` (Keras 3.15.1, torch 2.13, jax 0.10.2).

Example:
    >>> from duofit.common.loader import load_spec
    >>> spec = load_spec("examples/seed.toml")
    >>> [c.id for c in ATTENTION_CAUSES if c.applies(spec, spec, False)]
    []
"""

from __future__ import annotations

from collections.abc import Callable

from duofit.common.spec import Spec
from duofit.common.spec.layers_attention import MultiHeadAttentionLayer, attention_settings
from duofit.common.spec.masks import mask_flow
from duofit.parity.cause import TRAINING, Cause

__all__ = ["ATTENTION_CAUSES", "attention_differs", "masked_input_shared", "null_gradient_weights"]

_FORWARD_ON = ("forward", *TRAINING)
Predicate = Callable[[Spec, Spec, bool], bool]


def attention_differs(*fields: str) -> Predicate:
    """A predicate: the two specs' ``multi_head_attention`` layers set one of ``fields`` differently."""

    def check(a: Spec, b: Spec, strict: bool) -> bool:
        return attention_settings(list(a.model.layers), *fields) != attention_settings(list(b.model.layers), *fields)

    return check


def _float64_attention(a: Spec, b: Spec, strict: bool) -> bool:
    """A float64 run of Keras' own attention layer (strict mode swaps in the exact one)."""
    return not strict and a.train.dtype == "float64" and bool(attention_settings(list(a.model.layers), "type"))


def _mask_differs(a: Spec, b: Spec, strict: bool) -> bool:
    if not attention_settings(list(a.model.layers), "type"):
        return False
    masks = [
        [getattr(layer, "mask_zero", None) for layer in s.model.layers if layer.type == "embedding"] for s in (a, b)
    ]
    return masks[0] != masks[1] or attention_differs("causal")(a, b, strict)


def masked_input_shared(spec: Spec) -> bool:
    """A ``multi_head_attention`` reads a masked tensor that another layer reads too (a residual ``add``).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> masked_input_shared(load_spec("examples/text_transformer.toml"))
        True
    """
    layers, sources = list(spec.model.layers), spec.model.sources
    masked = mask_flow(layers)
    readers: dict[int, int] = {}
    for src in sources:
        for j in set(src):
            readers[j] = readers.get(j, 0) + 1
    return any(
        isinstance(layer, MultiHeadAttentionLayer) and masked[i] and any(readers[j] > 1 for j in set(sources[i]))
        for i, layer in enumerate(layers)
    )


NULL_GRADIENT = "attention_key_bias_null_gradient"


def null_gradient_weights(spec: Spec) -> list[str]:
    """Weights whose exact gradient is zero: the key projection's bias of each attention layer.

    The final-weights stage shows them apart (cause ``attention_key_bias_null_gradient``).

    Example:
        >>> from duofit.common.loader import load_spec
        >>> null_gradient_weights(load_spec("examples/text_transformer.toml"))
        ['layers.2.key_bias', 'layers.8.key_bias']
    """
    return [
        f"layers.{i}.key_bias"
        for i, layer in enumerate(spec.model.layers)
        if isinstance(layer, MultiHeadAttentionLayer) and layer.use_bias
    ]


ATTENTION_CAUSES: tuple[Cause, ...] = (
    Cause(
        "keras_mha_clears_input_mask",
        "Keras' MultiHeadAttention deletes the padding mask of the tensor it reads, so a residual add drops it",
        "MultiHeadAttention.call runs backend.set_keras_mask(query, None) (and value, key) on its input tensors "
        "in place; at run time a later add(x, attention(x)) sees x unmasked, Add.compute_mask returns None, and "
        "every later layer that takes its mask from the tensor (a second attention block) runs unmasked: padded "
        "keys are attended to and padded queries are not zeroed. The symbolic model still shows the mask (the "
        "functional graph is built from KerasTensors), and a layer called with one tensor and no keywords "
        "(GlobalAveragePooling1D) keeps the mask recorded at build time, so one block hides it and two expose "
        "it: measured on examples/text_transformer.toml, stage (b) 0.30 relative in float32 and float64 alike. "
        "torch has no tensor masks; duofit's torch module masks as the spec says",
        "keras/src/layers/attention/multi_head_attention.py call ('Delete the masks because the masks are "
        "handled at the level of the layer'); keras/src/layers/merging/base_merge.py compute_mask; "
        "keras/src/layers/layer.py __call__ (step 6 fills query_mask / value_mask from the tensors)",
        "duofit's Keras layer puts its inputs' masks back after the call (backends/keras/attention.py "
        "SpecAttention.call), so the mask flows as the spec says; a hand-written Keras model keeps the gap",
        _FORWARD_ON,
        lambda a, b, strict: False,  # duofit restores the masks; listed for hand ports
    ),
    Cause(
        NULL_GRADIENT,
        "The key projection's bias has an exact gradient of zero; Adam and RMSprop turn its rounding noise into steps",
        "score[t, s] = q_t . (k_s + b_k) / sqrt(d) = q_t . k_s / sqrt(d) + q_t . b_k / sqrt(d): the b_k term is "
        "the same for every key s of a query row, and softmax ignores a per-row constant, so dL/db_k = sum_t "
        "(sum_s dL/dscore[t, s]) q_t / sqrt(d) = 0 exactly (each row of the softmax backward sums to zero). Both "
        "frameworks compute it as rounding noise (about 1e-17 in float64), in different orders. SGD moves b_k by "
        "lr * noise; Adam and RMSprop divide the noise by its own running RMS plus epsilon, so b_k moves by up to "
        "lr per step on noise alone, differently on each side: measured on a two-block encoder, every other "
        "weight agrees to 1e-15 after 10 epochs of Adam while the key biases differ by 3e-10. The key bias "
        "changes no output, so the difference is harmless",
        "keras/src/layers/attention/multi_head_attention.py (_key_dense: EinsumDense with bias; _compute_attention "
        "softmax over the key axis); torch/nn/functional.py multi_head_attention_forward (in_proj_bias[E:2E])",
        "the final-weights stage compares every other weight and lists the key biases apart with their "
        "difference (duofit/parity/report.py)",
        ("final_weights",),
        lambda a, b, strict: bool(null_gradient_weights(a)),
    ),
    Cause(
        "mha_projection_layout",
        "Attention projections: torch packs q|k|v into in_proj_weight (3E, E); Keras has per-head EinsumDense kernels",
        "torch: [q; k; v] = x in_proj_weight^T + in_proj_bias, rows [0:E], [E:2E], [2E:3E], head h = features "
        "[h*d:(h+1)*d]; out = o out_proj.weight^T + b. Keras: q = einsum('abc,cde->abde', x, Wq (E, heads, "
        "key_dim)) + bq (heads, key_dim); out = einsum('abcd,cde->abe', o, Wo (heads, value_dim, E)) + bo. "
        "in_proj_weight = concat(Wq.reshape(E, E).T, Wk..., Wv...), out_proj.weight = Wo.reshape(E, E).T "
        "(exact both ways)",
        "torch/nn/functional.py _in_projection_packed, multi_head_attention_forward; torch/nn/modules/activation.py "
        "MultiheadAttention; keras/src/layers/attention/multi_head_attention.py build, _build_from_signature",
        "duofit keeps Keras' layout on every backend (backends/torch/attention.py computes with it); "
        "keras_to_torch / torch_to_keras there translate for nn.MultiheadAttention",
        _FORWARD_ON,
        lambda a, b, strict: False,  # duofit always keeps one layout; listed for hand ports
    ),
    Cause(
        "mha_key_dim",
        "Keras' key_dim is per head; torch's embed_dim is the total (head_dim = embed_dim / num_heads)",
        "Keras: projection width num_heads * key_dim, free of the model width E, value_dim may differ; torch "
        "nn.MultiheadAttention: head_dim = embed_dim // num_heads, width = embed_dim = E; passing Keras' key_dim "
        "as embed_dim gives heads of key_dim / num_heads and other weight shapes",
        "keras/src/layers/attention/multi_head_attention.py __init__ (key_dim: 'Size of each attention head'); "
        "torch/nn/modules/activation.py MultiheadAttention.__init__ (head_dim = embed_dim // num_heads)",
        "the spec's key_dim / value_dim are Keras' (per head); duofit's torch module takes any of them",
        ("initial_weights", *_FORWARD_ON),
        attention_differs("num_heads", "key_dim", "value_dim"),
    ),
    Cause(
        "mha_scale_constant",
        "Attention scale: Keras 1/sqrt(key_dim), torch sqrt(1/head_dim): one ulp apart for many sizes",
        "Keras explicit path: q * (1.0 / math.sqrt(key_dim)) before q.k; fused path (q.k) * scale after; torch "
        "need_weights=True: q * math.sqrt(1.0 / head_dim) before, scaled_dot_product_attention: after. "
        "1/sqrt(8) = 0.35355339059327373, sqrt(1/8) = 0.3535533905932738",
        "keras/src/layers/attention/multi_head_attention.py __init__ (_inverse_sqrt_key_dim), _compute_attention; "
        "torch/nn/functional.py multi_head_attention_forward, scaled_dot_product_attention docstring",
        "duofit's torch module scales the query by 1.0 / math.sqrt(key_dim) where Keras' explicit path does",
        _FORWARD_ON,
        lambda a, b, strict: False,  # float64 noise, duofit uses Keras' constant; listed for hand ports
    ),
    Cause(
        "keras_mha_scale_float32",
        "Keras' explicit attention path scales a float64 query by float32(1/sqrt(key_dim)) on TensorFlow and JAX",
        "ops.cast(self._inverse_sqrt_key_dim, query.dtype) first makes a float32 tensor of the Python float: "
        "1/sqrt(2) = 0.7071067811865475 -> 0.7071067690849304 (1.7e-8 relative; measured 9e-9 on a model's "
        "output); keras-torch's cast keeps the float64 value",
        "keras/src/layers/attention/multi_head_attention.py _compute_attention; "
        "keras/src/backend/tensorflow/core.py cast (tf.cast of a Python float)",
        "--strict scales by a constant of the query's dtype (backends/keras/attention.py ExactAttention)",
        _FORWARD_ON,
        _float64_attention,
        backends=("keras", "keras-jax"),
    ),
    Cause(
        "keras_jax_attention_float32",
        "Keras on JAX computes the attention softmax in float32, even in a float64 model",
        "with dropout 0 Keras calls ops.dot_product_attention -> jax.nn.dot_product_attention(implementation="
        "'xla'), whose core casts the logits to float32 ('Softmax and it is always carried out in fp32') and "
        "the probabilities back: about 1e-7 relative (measured 5.7e-8 against torch float64)",
        "keras/src/layers/attention/multi_head_attention.py _compute_attention (use_dot_product_attention); "
        "keras/src/backend/jax/nn.py dot_product_attention; jax/_src/nn/functions.py _dot_product_attention_core",
        "--strict always takes Keras' explicit path (backends/keras/attention.py ExactAttention)",
        _FORWARD_ON,
        _float64_attention,
        backends=("keras-jax",),
    ),
    Cause(
        "mha_mask_polarity",
        "Attention masks: torch MultiheadAttention True = masked, Keras True = attend; causal masks are not implied",
        "torch key_padding_mask / attn_mask (bool): True -> -inf (_canonical_mask); Keras attention_mask and "
        "Keras masks: True = attend, others -> -1e9 before the softmax and 0 after it; torch's "
        "scaled_dot_product_attention bool mask is True = attend again. Causal: Keras use_causal_mask = "
        "tril(ones(T, S)) (top-left aligned), torch attn_mask = ~tril. A padding mask or causal flag on one "
        "side only changes every masked row",
        "torch/nn/functional.py _canonical_mask, multi_head_attention_forward, scaled_dot_product_attention; "
        "keras/src/layers/attention/multi_head_attention.py _compute_attention_mask, _compute_causal_mask; "
        "keras/src/layers/activations/softmax.py Softmax.call",
        "the spec's causal and the embedding's mask_zero build the same boolean mask on every backend "
        "(backends/torch/attention.py uses Keras' polarity)",
        _FORWARD_ON,
        _mask_differs,
    ),
    Cause(
        "mha_query_mask",
        "Keras also masks padded queries (their rows become 0); torch's key_padding_mask masks keys only",
        "Keras: mask[b, t, s] = query_mask[b, t] & value_mask[b, s] (& causal); a padded query row is fully "
        "masked and the explicit path returns 0 for it (fused TensorFlow path: uniform weights); torch "
        "MultiheadAttention: the row attends to the valid keys; need_weights=True with every key masked gives NaN",
        "keras/src/layers/attention/multi_head_attention.py _compute_attention_mask; "
        "keras/src/layers/activations/softmax.py ('Zero out masked positions in case the entire axis is masked'); "
        "torch/nn/functional.py multi_head_attention_forward",
        "duofit's torch module masks queries as Keras does; padded rows reach the loss only if a later layer "
        "drops the mask (mask_flow refuses a mask at the output)",
        _FORWARD_ON,
        lambda a, b, strict: False,  # duofit mirrors Keras; listed for hand ports
    ),
    Cause(
        "mha_initializers",
        "Attention initializers: Keras glorot per projection, torch xavier on the packed (3E, E) matrix",
        "Keras: each EinsumDense kernel glorot_uniform with fan_in E, fan_out heads*dim: U(+-sqrt(6/(E + "
        "heads*key_dim))), biases 0; torch: xavier_uniform_(in_proj_weight (3E, E)) = U(+-sqrt(1.5/E)), "
        "out_proj U(+-1/sqrt(E)) (Linear's kaiming_uniform_(a=sqrt(5))), biases 0: a sqrt(2) wider range",
        "keras/src/layers/core/einsum_dense.py build (_update_kernel_initializer); "
        "torch/nn/modules/activation.py MultiheadAttention._reset_parameters",
        "one numpy draw with Keras' fans for every backend (common/init_attention.py)",
        ("initial_weights", *_FORWARD_ON),
        lambda a, b, strict: False,  # duofit shares one draw; listed for hand ports
    ),
    Cause(
        "torch_sdpa_kernels",
        "torch's fused attention kernels (CPU flash SDPA, the MultiheadAttention eval fast path) sum in another order",
        "nn.MultiheadAttention with need_weights=False calls scaled_dot_product_attention (float64 on CPU: the "
        "blocked flash kernel, online softmax); in eval without grad, batch_first self-attention takes "
        "torch._native_multi_head_attention; training uses baddbmm + softmax: 1e-16 relative apart, so stages "
        "that mix train and eval mix kernels",
        "torch/nn/modules/activation.py MultiheadAttention.forward (why_not_fast_path); "
        "torch/nn/functional.py scaled_dot_product_attention",
        "duofit's torch module computes every mode with the same einsum + softmax ops (backends/torch/attention.py)",
        _FORWARD_ON,
        lambda a, b, strict: False,  # float64 noise; duofit avoids the fused kernels; listed for hand ports
    ),
)
