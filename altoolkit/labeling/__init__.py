"""Human labeling: a project's label store, the labeling page's server, exports to and imports from other tools,
and stable ids for a folder of unlabeled images. Used by ``label.py`` and ``train.py --label-store``."""
