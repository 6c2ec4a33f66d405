"""Known operators with no arithmetic: views, allocation, copies, gathers.

Two groups, both 0 MACs and 0 FLOPs, both *known* (never unsupported):

* :data:`ZERO_COST` (category ``zero_cost``): aliasing views and metadata
  (``view``, ``reshape``, ``permute``, ``transpose``, ``expand``, ``t``,
  ``detach``, ``slice``, ``select``, ``split``, ``unbind`` ...), allocation
  and initialisation (``empty``, ``zeros``, ``ones``, ``full``, ``arange``,
  ``fill_``, ``zero_``), sparse tensors made from their indices and values
  (``sparse_coo_tensor``, ``_values``) and random number generation (``randn``,
  ``uniform_``, ``normal_``, ``bernoulli_``). Dropout in eval dispatches no
  operator at all.
* :data:`DATA_MOVEMENT` (category ``data_movement``): operators that read
  and write memory without arithmetic: ``clone``, ``copy_``, ``_to_copy``,
  ``cat``, ``stack``, padding, ``index``/``gather``/``scatter``, ``where``,
  ``masked_fill``, ``roll``, ``flip``, ``repeat``, pixel/channel shuffles,
  layout conversions (``to_sparse``, ``coalesce``).
  Their memory traffic shows in the events' byte counts.

* Collectives (category ``data_movement``): ``torch.distributed``'s
  communication, as a ``DistributedDataParallel`` training step's backward
  all-reduces its gradients (``c10d.allreduce_``) and ``torch.distributed``'s
  functional collectives (``_c10d_functional.all_reduce``, ``wait_tensor``)
  that DTensor and FSDP2 dispatch (and ``_wrap_tensor_autograd``, which
  hands a functional collective's result to autograd). Their bytes are those
  of the calling rank's tensors.

Decisions: ``cat``/``stack``/``clone``/``copy_`` are data movement, not
zero cost (they write a new tensor); ``where``/``masked_fill`` are selection,
not arithmetic; ``col2im`` sums overlapping patches.
Gradients that only route values back (``select_backward``,
``slice_backward``, padding gradients...) are data movement too.
# NB: the adds of a reducing collective (all-reduce, reduce-scatter: a sum over
# ranks, made on the other ranks or by the network) are not counted: they depend
# on the number of ranks and the algorithm, and are not this rank's kernels.
# NB: coalescing a COO tensor sums its duplicate entries: those adds are not counted.
# NB: ``col2im``'s overlap adds, ``index_put_(accumulate=True)``'s adds and
# the adds where ``unfold_backward`` and the reflection/replication padding
# gradients fold overlapping or mirrored positions together are not counted.
"""

from __future__ import annotations

from flopaudit.reference.formulas._factories import existing
from flopaudit.reference.registry import Category, zero_cost

ZERO_COST_NAMES: tuple[str, ...] = (
    # views and metadata
    "view", "_unsafe_view", "reshape", "_reshape_alias", "permute", "transpose", "transpose_", "t", "t_",
    "expand", "expand_as", "squeeze", "squeeze_", "unsqueeze", "unsqueeze_", "slice", "select", "unbind",
    "split", "split_with_sizes", "unsafe_split", "unsafe_split_with_sizes", "chunk", "unsafe_chunk",
    "tensor_split", "narrow", "as_strided", "as_strided_", "alias", "detach", "detach_", "view_as_real",
    "view_as_complex", "unfold", "diagonal", "movedim", "swapaxes", "swapdims", "flatten", "unflatten",
    "lift_fresh", "_local_scalar_dense", "resize_", "resize_as_", "set_", "conj", "_conj", "_neg_view",
    "_linalg_check_errors",  # raises if a LAPACK info tensor says a factorisation failed: a check, no work
    "resolve_conj", "resolve_neg", "real", "imag", "_unsafe_view", "_assert_async", "_assert_scalar",
    "_assert_tensor_metadata", "_functional_assert_async", "sym_constrain_range_for_size", "_nested_tensor_size",
    "_make_dep_token", "record_stream",
    # sparse tensors made from their indices and values, and read back apart
    "_sparse_coo_tensor_with_dims_and_tensors", "_sparse_coo_tensor_with_dims", "sparse_coo_tensor",
    "_sparse_coo_tensor_unsafe", "_sparse_csr_tensor_unsafe", "sparse_csr_tensor", "_sparse_compressed_tensor_unsafe",
    "sparse_compressed_tensor", "_indices", "_values", "indices", "values", "crow_indices", "col_indices",
    "ccol_indices", "row_indices", "_nnz", "sparse_dim", "dense_dim", "_dimI", "_dimV", "is_coalesced",
    "_coalesced_", "sparse_resize_", "sparse_resize_and_clear_",
    # allocation and initialisation
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "zeros", "zeros_like",
    "new_zeros", "ones", "ones_like", "new_ones", "full", "full_like", "new_full", "fill", "fill_", "zero_",
    "_foreach_zero", "_foreach_zero_",
    "arange", "linspace", "logspace", "eye", "scalar_tensor", "tensor", "_empty_affine_quantized",
    "_empty_per_channel_affine_quantized",
    # random number generation
    "rand", "rand_like", "randn", "randn_like", "randint", "randint_like", "randperm", "normal", "normal_",
    "uniform", "uniform_", "bernoulli", "bernoulli_", "random_", "exponential_", "cauchy_", "geometric_",
    "log_normal_", "multinomial", "poisson",
)
DATA_MOVEMENT_NAMES: tuple[str, ...] = (
    "clone", "copy", "copy_", "_foreach_clone", "_foreach_copy", "_foreach_copy_", "_to_copy", "_copy_from",
    "_copy_from_and_resize", "contiguous",
    "lift_fresh_copy", "to", "_to_dense", "to_dense", "cat", "_cat", "concat", "stack", "hstack", "vstack",
    "constant_pad_nd", "pad", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
    "replication_pad1d", "replication_pad2d", "replication_pad3d", "_pad_circular", "index", "_unsafe_index",
    "index_put", "index_put_", "_index_put_impl_", "_unsafe_index_put", "index_select", "index_copy",
    "index_copy_", "index_fill", "index_fill_", "gather", "scatter", "scatter_", "take", "take_along_dim",
    "put", "put_", "masked_fill", "masked_fill_", "masked_scatter", "masked_scatter_", "masked_select",
    "where", "nonzero", "nonzero_static", "roll", "flip", "fliplr", "flipud", "rot90", "repeat",
    "repeat_interleave", "tile", "pixel_shuffle", "pixel_unshuffle", "channel_shuffle",
    "native_channel_shuffle", "im2col", "col2im", "slice_scatter", "select_scatter", "diagonal_scatter",
    "as_strided_scatter", "tril", "tril_", "triu", "triu_", "narrow_copy", "view_copy", "permute_copy",
    "expand_copy", "transpose_copy", "t_copy", "unsqueeze_copy", "squeeze_copy", "slice_copy",
    "select_copy", "split_copy", "split_with_sizes_copy", "unbind_copy", "alias_copy", "detach_copy",
    "as_strided_copy", "diagonal_copy", "unfold_copy", "_reshape_copy", "max_unpool2d", "max_unpool3d",
    "one_hot", "block_diag", "diag", "diag_embed", "flatten_dense_tensors", "_pin_memory", "lu_unpack",
    # dense <-> sparse layouts, and coalescing (sorting a COO tensor's entries)
    "to_sparse", "_to_sparse", "to_sparse_csr", "_to_sparse_csr", "to_sparse_csc", "_to_sparse_csc", "to_sparse_bsr",
    "_to_sparse_bsr", "to_sparse_bsc", "_to_sparse_bsc", "coalesce", "_coalesce",
    # gradients that only route values (zeros plus a copy into the input's shape)
    "select_backward", "slice_backward", "diagonal_backward", "unfold_backward", "index_select_backward",
    "masked_select_backward", "masked_scatter_backward", "gather_backward", "value_selecting_reduction_backward",
    "to_dense_backward", "_pack_padded_sequence_backward", "reflection_pad1d_backward", "reflection_pad2d_backward",
    "reflection_pad3d_backward", "replication_pad1d_backward", "replication_pad2d_backward",
    "replication_pad3d_backward",
    # padded <-> nested (``nn.TransformerEncoder`` with a padding mask in eval)
    "_nested_tensor_from_mask", "_nested_tensor_from_mask_left_aligned", "to_padded_tensor",
    "_nested_tensor_from_tensor_list", "_nested_from_padded", "_nested_from_padded_and_nested_example",
)

#: ``torch.distributed``'s collectives: ``c10d`` (process-group calls) and ``_c10d_functional``.
COLLECTIVE_NAMES: dict[str, tuple[str, ...]] = {
    "c10d": ("allreduce_", "allreduce_coalesced_", "allgather_", "allgather_coalesced_",
             "allgather_into_tensor_coalesced_", "_allgather_base_", "reduce_", "reduce_scatter_",
             "_reduce_scatter_base_", "reduce_scatter_tensor_coalesced_", "broadcast_", "alltoall_",
             "alltoall_base_", "gather_", "gather_into_tensor_", "scatter_", "send", "recv_",
             "recv_any_source_", "barrier", "monitored_barrier_", "check_for_nan"),
    "_c10d_functional": ("all_reduce", "all_reduce_", "all_reduce_coalesced", "all_reduce_coalesced_",
                         "all_gather_into_tensor", "all_gather_into_tensor_coalesced", "all_gather_into_tensor_out",
                         "reduce_scatter_tensor", "reduce_scatter_tensor_coalesced", "reduce_scatter_tensor_out",
                         "all_to_all_single", "broadcast", "broadcast_", "wait_tensor", "isend", "irecv",
                         "batch_p2p_ops"),
    "_c10d_functional_autograd": ("all_gather_into_tensor", "reduce_scatter_tensor", "all_to_all_single"),
}

zero_cost_ops = zero_cost(Category.ZERO_COST, *existing(*dict.fromkeys(ZERO_COST_NAMES)), name="zero_cost")
data_movement_ops = zero_cost(
    Category.DATA_MOVEMENT, *existing(*dict.fromkeys(DATA_MOVEMENT_NAMES)), name="data_movement"
)
collective_ops = zero_cost(
    Category.DATA_MOVEMENT,
    *[key for namespace, names in COLLECTIVE_NAMES.items() for key in existing(*names, namespace=namespace)],
    # (a Python custom op, defined when torch.distributed._functional_collectives is imported)
    "_c10d_functional._wrap_tensor_autograd",
    name="collectives",
)
