"""The default of every protocol setting, one source: the protocols' constructors
(``wsolbench.evaluation.protocols``), the suites' ``[evaluation]`` table and the commands'
flags all take theirs from here. Each cites the reference it comes from. This module imports
nothing, so ``wsolbench --help`` can show the values without loading torch.
"""

# wsolevaluation (clovaai/wsolevaluation @ 96f4b88)
MAP_SIZE = 224  # evaluation.py:41 `_RESIZE_LENGTH = 224`
# config.py:171 `--cam_curve_interval ... default=.001` (main.py's runs) and evaluation.py:430
# `evaluate_wsol(..., cam_curve_interval=.001)`; evaluation.py's own command line defaults to
# 0.01 (evaluation.py:509), the one place upstream that differs.
CAM_CURVE_INTERVAL = 0.001
IOU_THRESHOLDS = (30, 50, 70)  # config.py:181-182 `--iou_threshold_list ... default=[30, 50, 70]`

# spa (Panxjia/SPA_CVPR2021 @ 32bf2d5)
BOX_THRESHOLDS = (0.2,)  # utils/localization.py:54 `get_topk_boxes_hier(..., threshold=0.2, ...)`

# the box-localization families (tscam, scm, bas): the dataset whose released configuration
# gives a family's box threshold and conventions (docs/protocols.md sec. 10); its box threshold
# defaults to that configuration's (None here).
FAMILY_DATASETS = ("cub", "ilsvrc")
FAMILY_DATASET = "cub"
# wsolbench's own (no reference fixes them)
EVAL_BATCH_SIZE = 32  # images per inference batch (infer, bench's [evaluation] batch_size)
