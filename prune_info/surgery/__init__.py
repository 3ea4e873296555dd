"""Plans and their removal: the one place that drives torch-pruning's ``DependencyGraph``.

A *plan* names, for each hidden layer, the units (neurons or channels) to remove, by their index
in the model the plan is applied to. :func:`apply_plan` removes exactly those units with
torch-pruning's ``DependencyGraph``, so that everything coupled to a layer's outputs shrinks with
it: the next layer's inputs, a BatchNorm after the layer, and for a CNN the block of
``H × W`` inputs of the first fully-connected layer that one channel becomes after flattening.
A 784-100-100-10 MLP pruned by half becomes a real 784-50-50-10 MLP with smaller weight
matrices; :func:`mask_plan` instead keeps every shape and zeroes the units.

What "removing a unit" means
----------------------------
Removing unit ``j`` of a layer deletes row ``j`` of its weight and bias, channel ``j`` of a
BatchNorm right after it, and the inputs of the next layer that read unit ``j``. The pruned model
therefore computes exactly what the unpruned model computes when unit ``j``'s *post-activation*
output (the value the next layer reads, after BatchNorm and the activation) is zero. For a ReLU
layer without BatchNorm this is the same as zeroing the layer's pre-activation output; with
BatchNorm, or with sigmoid / tanh, it is not (``sigmoid(0) = 0.5``, and BatchNorm shifts a zero
input by its bias and running mean), and the post-activation output is the right reference.

torch-pruning traps avoided here
--------------------------------
* ``BasePruner(global_pruning=True)`` silently skips a layer whose threshold would remove all
  of its channels (``DependencyGraph.check_pruning_group`` fails and the group is not yielded);
  here the plan is explicit and a layer that would lose every unit is an error.
* ``iterative_steps > 1`` renumbers the channels after the first step, so a fixed score vector
  then points at the wrong units; here every layer is pruned once, with indices that refer to
  the numbering of the model the plan was made for. Pruning one layer's outputs only renumbers
  the *inputs* of the layers it feeds, never another layer's outputs, so layers can be pruned
  one after the other in any order with their original indices (tests check this).
* Tracing relies on autograd: the graph is built under ``torch.enable_grad()`` with every
  parameter temporarily requiring gradients, and in eval mode, so that tracing does not update
  BatchNorm running statistics.

Attention heads
---------------
The heads of an attention module (:func:`prune_info.nn.attention_heads`, kind ``heads``) are not
removed through torch-pruning, whose graph does not follow the reshape of the queries, keys and
values into heads: removing head ``h`` deletes its ``head_dim`` rows of each of them (in a fused
``qkv`` or in ``q_proj``, ``k_proj``, ``v_proj``) and its columns of the output projection, and
lowers the module's head count (and timm's ``attn_dim``), so the pruned module runs, exports and
reloads. Its other outputs are untouched, so this equals the original with the head's output
(the input of the output projection) zeroed, which the verification checks; masking zeroes the
same rows and columns.

Pruning history
---------------
Each pruning step appends one plain-data entry to ``Checkpoint.pruning_history`` (see
:func:`history_entry`); :func:`replay_history` repeats the removals on a freshly built model, which
is how a pruned checkpoint with a ``factory`` (``package.module:function``) is rebuilt before its
weights load.
"""

from prune_info.surgery.graph import (
    ChannelFlow,
    LayerPruneError,
    UnitGroup,
    channel_flow,
    unit_groups,
)
from prune_info.surgery.history import history_entry, plan_from_entry, replay_history
from prune_info.surgery.plan import PrunePlan
from prune_info.surgery.transform import apply_plan, mask_plan

__all__ = ["ChannelFlow", "LayerPruneError", "PrunePlan", "UnitGroup", "apply_plan",
           "channel_flow", "history_entry", "mask_plan", "plan_from_entry", "replay_history",
           "unit_groups"]
