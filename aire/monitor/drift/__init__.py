"""Drift between two windows of production logs (reference vs current): the post-deploy monitor's detector.

Pure functions over DataFrames in the schema of ``aire.data.logs`` (one row per request). Every row is reduced
to a few features (``features``: the one list of them, ``FEATURES``), each feature gets one two-sample test
(``twosample``; texts through their sentence embeddings, ``embeddings``), and ``detect`` corrects the p-values
of all the tests of one report together (Holm), so "any drift" keeps its false-alarm rate at ``alpha``
however many features there are; ``report`` is what it returns.

Tests: numeric features get the two-sample Kolmogorov-Smirnov test, with the population stability index (PSI,
on the reference's deciles) and the Wasserstein distance as effect sizes; categorical ones the chi-square test
of homogeneity and the PSI over categories; prompts and responses as texts the maximum mean discrepancy (MMD²,
RBF kernel) between their sentence embeddings (bundled all-MiniLM-L6-v2), with a permutation p-value.

Libraries: scipy and statsmodels, not a drift framework. evidently fails to import under pandas 3 and
alibi-detect forces numpy<2 and pandas<3; what they would add here is the same ``ks_2samp`` call underneath,
PSI (a few lines) and an MMD permutation test (a few more).

The public names are exported by ``aire.monitor``.
"""
