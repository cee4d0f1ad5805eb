"""Annotation import: COCO / VIA parsing into masks (``parse``) and category-to-class maps."""
