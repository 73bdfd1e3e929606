"""Evaluation and reports: COCO keypoint AP, the error report, and checking a board's log against the twin."""
