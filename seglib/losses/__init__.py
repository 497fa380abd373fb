"""Segmentation losses for sigmoid outputs, each a registered serializable Keras Loss (registered
names "seglib>ClassName", stable across releases so saved runs load)."""

from seglib._lazy import lazy_exports

__getattr__, __dir__ = lazy_exports(__name__, {
    "dice": ("DiceLoss", "BCEDiceLoss", "soft_dice_per_image"),
    "focal": ("FocalLoss", "TverskyLoss", "FocalTverskyLoss", "SymmetricUnifiedFocalLoss",
              "AsymmetricUnifiedFocalLoss"),
    "spec": ("LOSSES", "WeightedSum", "get_loss"),
})
