"""Recurrent and attention layers in an exported torch script (entries of :data:`duofit.porting.torch_code.LAYER_CODE`).

Recurrent layers become the stock ``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` with ``batch_first=True``:
the torch backend runs the same kernels (``duofit/backends/torch/rnn.py`` calls the op these
modules call), with Keras' weights translated once when they are loaded:

- ``weight_ih_l0 = kernel.T``, ``weight_hh_l0 = recurrent_kernel.T`` (torch applies ``x @ W.T``);
- LSTM gates: Keras' (i, f, c, o) is torch's (i, f, g, o), no reordering; GRU: Keras stacks
  (z, r, h), torch (r, z, n): the blocks are swapped, and Keras' ``reset_after`` bias
  ``(2, 3 * units)`` is row 0 = ``bias_ih_l0``, row 1 = ``bias_hh_l0``;
- ``nn.RNN`` / ``nn.LSTM`` have a second bias ``bias_hh_l0`` Keras lacks: zero and frozen, as
  the torch backend (and Keras' own torch bridge) keep it;
- a ``bidirectional`` layer is one module with ``bidirectional=True``: the backward direction's
  parameters carry torch's ``_reverse`` suffix and load from duofit's ``backward_*`` weights with the
  same translation (as ``duofit/backends/torch/export.py`` ``_bidirectional_to_torch``); torch runs
  it on the reversed sequence and aligns its outputs with the input's steps, as the torch backend's
  ``Bidirectional`` and Keras' ``Bidirectional.call`` do. ``merge = "concat"`` is torch's own output
  (forward then backward); ``"sum"`` adds the halves; without ``return_sequences`` the output is
  the two last states ``h_n[0]``, ``h_n[1]`` (not ``output[:, -1]``, whose backward half has seen
  one step).

Attention is an explicit module (:data:`MHA_CLASS`) with Keras' math, as the torch backend's
``duofit/backends/torch/attention.py``; ``nn.MultiheadAttention`` is not the same function
(its ``key_dim`` is ``width / num_heads``, it leaves padded queries unmasked and masks with
``-inf``, so a fully padded row gives NaN where Keras gives 0).

Example:
    >>> from duofit.common.spec.layers_rnn import GRULayer
    >>> from duofit.porting.torch_site import Site
    >>> recurrent_code(Site(GRULayer(type="gru", units=4), 0, ["x"], "x", [(8, 3)], False)).init
    ['self.gru_0 = nn.GRU(3, 4, batch_first=True)']
    >>> from duofit.common.spec.layers_rnn import BidirectionalLayer
    >>> both = BidirectionalLayer(type="bidirectional", layer={"type": "gru", "units": 4}, merge="sum")
    >>> code = recurrent_code(Site(both, 1, ["x"], "x", [(8, 3)], False))
    >>> print(code.init[0]); print(code.forward[-1])
    self.bidirectional_1 = nn.GRU(3, 4, batch_first=True, bidirectional=True)
    x = h_n[0] + h_n[1]  # merge = "sum"
"""

from __future__ import annotations

from duofit.common.spec.layers_attention import MultiHeadAttentionLayer
from duofit.common.spec.layers_rnn import BidirectionalLayer, GRULayer, LSTMLayer, RecurrentBase, SimpleRNNLayer
from duofit.porting.torch_site import LayerCode, Site, refuse, weight

__all__ = ["GRU_GATES", "MHA_CLASS", "attention_code", "recurrent_code"]

_MODULES = {SimpleRNNLayer: "nn.RNN", LSTMLayer: "nn.LSTM", GRULayer: "nn.GRU"}
# What torch's cells compute: nn.RNN takes tanh or relu; nn.LSTM / nn.GRU fix tanh and sigmoid.
_ACTIVATIONS = {SimpleRNNLayer: ("tanh", "relu"), LSTMLayer: ("tanh",), GRULayer: ("tanh",)}

GRU_GATES = '''
def gru_gates(a: np.ndarray) -> np.ndarray:
    """Keras' GRU gate blocks (z, r, h) on the last axis, reordered to torch's (r, z, n)."""
    h = a.shape[-1] // 3
    return np.concatenate([a[..., h : 2 * h], a[..., :h], a[..., 2 * h :]], axis=-1)
'''


def _check(site: Site, layer: RecurrentBase, inner: str) -> None:
    """Refuse what torch's cells cannot compute; ``inner`` is ``"layer."`` for a bidirectional's wrapped layer."""
    allowed = _ACTIVATIONS[type(layer)]
    if layer.activation not in allowed:
        what = f"{layer.type} with activation {layer.activation!r} (torch's cell computes {' or '.join(allowed)})"
        raise refuse(site, f"{inner}activation", what, f"use activation = {allowed[0]!r}")
    if getattr(layer, "recurrent_activation", "sigmoid") != "sigmoid":
        what = "gates other than sigmoid (torch's cells fix it)"
        raise refuse(site, f"{inner}recurrent_activation", what, "use recurrent_activation = 'sigmoid'")
    if isinstance(layer, GRULayer) and not layer.reset_after:
        what = "reset_after = false (nn.GRU applies the reset gate after the matmul)"
        raise refuse(site, f"{inner}reset_after", what, "use reset_after = true")


# (duofit's weight-name prefix, torch's parameter suffix) of each direction; torch names the backward
# direction's parameters with "_reverse" (torch/nn/modules/rnn.py RNNBase.__init__)
_ONE_WAY = (("", ""),)
_BOTH_WAYS = (("forward_", ""), ("backward_", "_reverse"))


def _forward(site: Site, cell: RecurrentBase, merge: str | None) -> list[str]:
    """The forward lines; ``merge`` is the bidirectional's (None: one direction).

    nn.RNN/LSTM/GRU return (output, h_n): output (N, steps, directions * units) holds the forward then the
    backward direction's state at every step, the backward one already aligned with the input's steps;
    h_n (directions, N, units) the last state of each direction, the backward one after the whole reversed
    sequence (torch/nn/modules/rnn.py); as the torch backend's two layers (duofit/backends/torch/rnn.py).
    """
    m, x, out, units = f"self.{site.attr}", site.ins[0], site.out, cell.units
    state = "(h_n, _)" if isinstance(cell, LSTMLayer) else "h_n"
    if merge is None and cell.return_sequences:
        return [f"{out}, _ = {m}({x})  # every step's output: (N, steps, units)"]
    if merge is None:
        return [f"_, {state} = {m}({x})", f"{out} = h_n[-1]  # the last step's state (return_sequences = false)"]
    if cell.return_sequences and merge == "concat":
        return [f"{out}, _ = {m}({x})  # every step: forward then backward states, (N, steps, 2 * units)"]
    if cell.return_sequences:
        return [
            f"{out}, _ = {m}({x})  # every step: forward then backward states, (N, steps, 2 * units)",
            f'{out} = {out}[..., :{units}] + {out}[..., {units}:]  # merge = "sum"',
        ]
    merged = "torch.cat([h_n[0], h_n[1]], dim=-1)" if merge == "concat" else "h_n[0] + h_n[1]"
    return [
        f"_, {state} = {m}({x})",
        "# each direction's last state: the forward one after step T, the backward one after step 1",
        f'{out} = {merged}  # merge = "{merge}"',
    ]


def _load(site: Site, cell: RecurrentBase, directions: tuple[tuple[str, str], ...]) -> tuple[list[str], list[str]]:
    """The lines copying each direction's Keras-layout weights, and the frozen second biases (init lines)."""
    gru = isinstance(cell, GRULayer)
    order = "gru_gates({})" if gru else "{}"
    if gru:
        load = ["# Keras stacks the GRU gates (z, r, h), nn.GRU (r, z, n): reorder, then transpose to [out, in]"]
    else:
        load = ["# Keras stores kernels [in, gates * units]; torch's weights are [gates * units, in]"]
    if gru and cell.use_bias:
        load.append("# Keras' reset_after bias is (2, 3 * units): row 0 the input bias, row 1 the recurrent one")
    frozen: list[str] = []
    m = f"model.{site.attr}"
    for prefix, suffix in directions:
        load += [
            f"{m}.weight_ih_l0{suffix}.copy_({weight(site, f'{prefix}kernel', order + '.T')})",
            f"{m}.weight_hh_l0{suffix}.copy_({weight(site, f'{prefix}recurrent_kernel', order + '.T')})",
        ]
        if cell.use_bias and gru:
            load.append(f"{m}.bias_ih_l0{suffix}.copy_({weight(site, f'{prefix}bias', 'gru_gates({})[0]')})")
            load.append(f"{m}.bias_hh_l0{suffix}.copy_({weight(site, f'{prefix}bias', 'gru_gates({})[1]')})")
        elif cell.use_bias:
            load.append(f"{m}.bias_ih_l0{suffix}.copy_({weight(site, f'{prefix}bias')})")
            load.append(f"{m}.bias_hh_l0{suffix}.zero_()")
            frozen.append(f"{site.attr}.bias_hh_l0{suffix}")
    return load, frozen


def recurrent_code(site: Site) -> LayerCode:
    """``nn.RNN`` / ``nn.LSTM`` / ``nn.GRU`` of a simple_rnn / lstm / gru layer (``bidirectional=True``: wrapped)."""
    both = isinstance(site.layer, BidirectionalLayer)
    cell: RecurrentBase = site.layer.layer if both else site.layer
    _check(site, cell, "layer." if both else "")
    args = [str(site.shapes[0][-1]), str(cell.units)]
    if cell.activation == "relu":
        args.append('nonlinearity="relu"')
    if not cell.use_bias:
        args.append("bias=False")
    args.append("batch_first=True")  # torch's default reads (N, T, F) as (T, N, F)
    if both:
        args.append("bidirectional=True")  # a second layer on the reversed sequence, as Keras' Bidirectional
    init = [f"self.{site.attr} = {_MODULES[type(cell)]}({', '.join(args)})"]
    load, frozen = _load(site, cell, _BOTH_WAYS if both else _ONE_WAY)
    if frozen:
        init.append(
            f"# Keras' {cell.type} has one bias; torch adds bias_hh_l0 to it: kept at zero so the two train alike"
        )
        init += [f"self.{name}.requires_grad_(False)" for name in frozen]
    return LayerCode(
        init=init,
        forward=_forward(site, cell, site.layer.merge if both else None),
        load=load,
        helpers=[GRU_GATES] if isinstance(cell, GRULayer) else [],
        same_randomness=False,  # torch's modules draw their initial weights; the backend's do not
        frozen=frozen,
    )


MHA_CLASS = '''
class MultiHeadAttention(nn.Module):
    """Keras' MultiHeadAttention, written out, with its weights in Keras' layout.

    Not nn.MultiheadAttention: there each head is width / num_heads wide (Keras' key_dim is free),
    padded queries stay unmasked and masked scores are -inf (a fully padded row gives NaN), so it is
    another function. Here, as Keras (keras/src/layers/attention/multi_head_attention.py): the query
    is scaled by 1 / sqrt(key_dim), masked scores are set to -1e9 before the softmax and to 0 after.
    """

    def __init__(self, width: int, num_heads: int, key_dim: int, value_dim: int, use_bias: bool, causal: bool) -> None:
        super().__init__()
        self.query_kernel = nn.Parameter(torch.zeros(width, num_heads, key_dim))
        self.key_kernel = nn.Parameter(torch.zeros(width, num_heads, key_dim))
        self.value_kernel = nn.Parameter(torch.zeros(width, num_heads, value_dim))
        self.output_kernel = nn.Parameter(torch.zeros(num_heads, value_dim, width))
        self.use_bias, self.causal = use_bias, causal
        if use_bias:
            self.query_bias = nn.Parameter(torch.zeros(num_heads, key_dim))
            self.key_bias = nn.Parameter(torch.zeros(num_heads, key_dim))
            self.value_bias = nn.Parameter(torch.zeros(num_heads, value_dim))
            self.output_bias = nn.Parameter(torch.zeros(width))
        self.scale = 1.0 / math.sqrt(float(key_dim))

    def project(self, x: torch.Tensor, part: str) -> torch.Tensor:
        """The projection x @ kernel (+ bias), one slice per head: (N, steps, heads, dim)."""
        out = torch.einsum("abc,cde->abde", x, getattr(self, f"{part}_kernel"))
        return out + getattr(self, f"{part}_bias") if self.use_bias else out

    def forward(self, query: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Attend from query to value; mask: (N, steps) True = a real token (None: no padding)."""
        q = self.project(query, "query") * self.scale
        k = self.project(value, "key")
        v = self.project(value, "value")
        scores = torch.einsum("aecd,abcd->acbe", k, q)  # (N, heads, query steps, value steps)
        attend = None
        if mask is not None:  # padded queries and padded keys
            attend = mask[:, : query.shape[1], None] & mask[:, None, : value.shape[1]]
        if self.causal:  # each query step sees the key steps up to its own
            tri = torch.ones(query.shape[1], value.shape[1], dtype=torch.bool, device=query.device).tril()[None]
            attend = tri if attend is None else attend & tri
        if attend is None:
            probs = torch.softmax(scores, dim=-1)
        else:
            m = attend[:, None]
            probs = torch.where(m, torch.softmax(torch.where(m, scores, -1e9), dim=-1), 0.0)
        out = torch.einsum("acbe,aecd->abcd", probs, v)  # (N, query steps, heads, value_dim)
        out = torch.einsum("abcd,cde->abe", out, self.output_kernel)
        return out + self.output_bias if self.use_bias else out
'''

_MHA_WEIGHTS = ("query_kernel", "query_bias", "key_kernel", "key_bias", "value_kernel", "value_bias")


def attention_code(site: Site) -> LayerCode:
    """The explicit :data:`MHA_CLASS` module for a multi_head_attention layer (self-attention or query/value)."""
    layer: MultiHeadAttentionLayer = site.layer
    width = site.shapes[0][-1]
    args = f"{width}, {layer.num_heads}, {layer.key_dim}, {layer.head_value_dim}, {layer.use_bias}, {layer.causal}"
    query, value = site.ins[0], site.ins[-1]
    mask = ", mask" if site.masked else ""
    names = [*_MHA_WEIGHTS, "output_kernel", "output_bias"]
    load = [
        f"model.{site.attr}.{n}.copy_({weight(site, n)})" for n in names if layer.use_bias or not n.endswith("_bias")
    ]
    return LayerCode(
        init=[f"self.{site.attr} = MultiHeadAttention({args})"],
        forward=[f"{site.out} = self.{site.attr}({query}, {value}{mask})"],
        load=load,
        helpers=[MHA_CLASS],
    )
