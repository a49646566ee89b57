"""Sizes that choose between the fast kernels' strategies (measured; history in
docs/performance.md). Changing one changes speed, never results beyond float rounding."""

#: bytes of im2col columns built at a time: a block of output rows is built, multiplied and
#: (in backward) scattered back while it is still in the cache.
BLOCK_BYTES = 1_600_000
#: a single output row whose columns exceed this is split into parts of ``BLOCK_BYTES``
#: (very large batches); below it whole rows are kept (fewer, larger products).
ROW_SPLIT_BYTES = 4_000_000
#: a row is also split when its product would have more than this many columns (``Wo·N``):
#: OpenBLAS slows down per column on wider products of LeNet-sized kernels.
MAX_COLS = 4096
#: whole-row products over the row fields need this many columns (``Wo·N``) to pay off;
#: narrower rows (small batches) use the im2col blocks, which stack several rows.
MIN_FIELD_COLS = 512
#: the row fields are ``kw``× the (padded) input; larger ones use the im2col blocks.
MAX_FIELD_BYTES = 8_000_000
#: max-pooling inputs at least this large keep the 2×2 winner comparisons in training (the
#: backward pass then need not re-read the input, by then out of the L2 cache); for smaller
#: inputs the three extra comparisons cost about what they save.
WINNERS_MIN_BYTES = 1 << 20
