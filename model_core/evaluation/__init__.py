"""Evaluation (layer 6): lip-sync and vertex metrics (:mod:`.metrics`), the real ARKit head
the lip gap is measured on (:mod:`.arkit_head`) and ``streamtalker evaluate``
(:mod:`.evaluate`). Import the submodules directly."""
