"""Constant folding for the `fold` variant.

torch's TorchScript exporter folds with do_constant_folding=True, but only where every
input is an initializer: it leaves nodes fed by `Constant` nodes (timm's non-persistent
buffers such as V2's relative_coords_table and V1's relative_position_index become
Constant nodes) and nodes with an omitted optional input (Clip(logit_scale, '', max)).
So after export the cpb MLP, 16*sigmoid, the bias gather and the logit-scale clamp are
still there. fold_constants() finishes the job: every node whose inputs depend on no
graph input is evaluated once (onnx.reference, fp32) and replaced by an initializer.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

# Ops never folded: random generators (would freeze a sample) and control flow.
_NO_FOLD = {
    'RandomNormal',
    'RandomUniform',
    'RandomNormalLike',
    'RandomUniformLike',
    'Multinomial',
    'Bernoulli',
    'If',
    'Loop',
    'Scan',
}


def fold_constants(model: onnx.ModelProto) -> tuple[onnx.ModelProto, Counter]:
    """Returns the folded model and a Counter of folded op types."""
    graph = model.graph
    const = {init.name for init in graph.initializer}
    folded: list[onnx.NodeProto] = []
    kept: list[onnx.NodeProto] = []
    for node in graph.node:  # ONNX graphs are stored in topological order
        ins = [i for i in node.input if i]
        if node.op_type == 'Constant' or (node.op_type not in _NO_FOLD and all(i in const for i in ins)):
            folded.append(node)
            const.update(node.output)
        else:
            kept.append(node)
    graph_outputs = {o.name for o in graph.output}
    needed = [n for n in dict.fromkeys(i for node in kept for i in node.input) if n in const] + [
        n for n in graph_outputs if n in const
    ]
    init_names = {init.name for init in graph.initializer}
    computed = [n for n in needed if n not in init_names]
    # Small Constant nodes that feed kept nodes directly stay Constant nodes: they are
    # shape arguments, and turning them into initializers changes nothing.
    producer = {o: node for node in folded for o in node.output}
    keep_constant_nodes = [producer[n] for n in computed if producer[n].op_type == 'Constant']
    to_eval = [n for n in computed if producer[n].op_type != 'Constant']

    new_inits = []
    if to_eval:
        sub_graph = helper.make_graph(
            folded,
            'fold',
            [],
            [helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None) for n in to_eval],
            list(graph.initializer),
        )
        sub = helper.make_model(sub_graph, opset_imports=model.opset_import)
        values = ReferenceEvaluator(sub).run(None, {})
        for name, value in zip(to_eval, values):
            new_inits.append(numpy_helper.from_array(np.asarray(value), name))

    used = {i for node in kept for i in node.input} | graph_outputs
    inits = [i for i in graph.initializer if i.name in used] + new_inits
    stats = Counter(n.op_type for n in folded if n.op_type != 'Constant')
    del graph.node[:]
    graph.node.extend(keep_constant_nodes + kept)
    del graph.initializer[:]
    graph.initializer.extend(inits)
    return model, stats


def input_first_order(model: onnx.ModelProto) -> onnx.ModelProto:
    """Re-sorts nodes topologically, preferring nodes on the path from the graph input.

    The exporter emits weight Identity/Transpose nodes first; ordering by data flow
    from "image" makes every graph read Cast -> Transpose -> Sub -> Div from the top,
    as ARCHITECTURE.md describes, without changing what is computed.
    """
    import heapq

    graph = model.graph
    nodes = list(graph.node)
    available = {i.name for i in graph.initializer} | {i.name for i in graph.input} | {''}
    from_input = {i.name for i in graph.input}
    consumers: dict[str, list[int]] = {}
    missing = []
    for idx, node in enumerate(nodes):
        need = {i for i in node.input if i not in available}
        missing.append(len(need))
        for i in need:
            consumers.setdefault(i, []).append(idx)

    def prio(idx):
        return (0 if any(i in from_input for i in nodes[idx].input) else 1, idx)

    ready = [prio(i) for i, m in enumerate(missing) if m == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, idx = heapq.heappop(ready)
        node = nodes[idx]
        order.append(node)
        if any(i in from_input for i in node.input):
            from_input.update(node.output)
        for out in node.output:
            for c in consumers.pop(out, []):
                missing[c] -= 1
                if missing[c] == 0:
                    heapq.heappush(ready, prio(c))
    if len(order) != len(nodes):
        raise RuntimeError('graph is not a DAG over its declared inputs')
    del graph.node[:]
    graph.node.extend(order)
    return model
