"""Sizes that choose between the fast kernels' strategies (measured; history in
docs/performance.md). Changing one changes speed, never results beyond float rounding."""

#: bytes of im2col columns built at a time: a block of output rows is built, multiplied and
#: (in backward) scattered back while it is still in the cache.
BLOCK_BYTES = 1_600_000
#: with many kernels ``F`` a block holds at least this many columns per kernel (so about
#: ``K·4F`` values): each block's product repacks the (F, K) kernel matrix and adds a (K, F)
#: weight-gradient product, which cache-sized blocks of VGG's 512-channel layers (one output
#: position of a batch of 64) repeated 16 times per layer (issue 11).
MIN_COLS_PER_FILTER = 4
#: ... but a block never exceeds this many bytes (ResNet-18's 512-channel layer at 7×7 and
#: batch 16: 14 MB for all its columns).
MAX_BLOCK_BYTES = 64 << 20
#: a single output row whose columns exceed this is split into parts of ``BLOCK_BYTES``
#: (very large batches); below it whole rows are kept (fewer, larger products).
ROW_SPLIT_BYTES = 4_000_000
#: a row is also split when its product would have more than this many columns (``Wo·N``):
#: OpenBLAS slows down per column on wider products of LeNet-sized kernels.
MAX_COLS = 4096
#: multiply-adds that cost about as much as moving one value through memory, weighing the
#: input gradient's strategies (row by row over the padded width, or col2im): 16 picks the
#: measured faster one for LeNet-5's C3 and resnet20's and VGG-11's 3×3 layers.
MACS_PER_VALUE = 16
#: whole-row products over the row fields need this many columns (``Wo·N``) to pay off;
#: narrower rows (small batches) use the im2col blocks, which stack several rows.
MIN_FIELD_COLS = 512
#: the row fields are ``kw``× the (padded) input; larger ones use the im2col blocks (8 MB
#: until issue 11: resnet20's 16-channel 32×32 layers at batch 64, 13 MB of fields, then
#: built 9× im2col blocks — forward 8.1 → 6.5 ms with the fields, in one process; VGG-11's
#: 64–256-channel layers take up to 16 MB, ResNet-18's 64-channel 56×56 layers at batch 16
#: 40 MB: its inference 2 % faster than on the blocks, at the same peak memory).
MAX_FIELD_BYTES = 64_000_000
#: row fields at most this large stay in the convolution's cache for the backward pass
#: (its weight gradient reads them again) when the layer has few kernels, ``F·kh`` at most
#: :data:`KEEP_FIELD_MACS`: the products then do few multiply-adds per field value and
#: building the fields again is a noticeable part of the step (LeNet-5's C1 and C3 at batch
#: 128: 2.3 and 2.2 MB, F·kh = 30 and 80); larger ones are built again (issue 11: kept, the
#: fields of resnet20's layers took ~65 MB).
KEEP_FIELD_BYTES = 2_500_000
KEEP_FIELD_MACS = 100
#: max-pooling inputs at least this large keep the 2×2 winner comparisons in training (the
#: backward pass then need not re-read the input, by then out of the L2 cache); for smaller
#: inputs the three extra comparisons cost about what they save.
WINNERS_MIN_BYTES = 1 << 20
