"""Faithfulness measurement of saliency maps, DiDA's and others', on images whose evidence is known: ``metrics``
(pointing game, relevance mass, deletion and insertion curves, bootstrap intervals), ``baselines`` (Grad-CAM, RISE,
captum occlusion and the random / centre / oracle sanity maps), ``cases`` (phantom B-scans as a model sees them)
and ``dida_runs`` (both score modes and any schedule's part from one DiDA run).

The faithfulness benchmark (``Testing/benchmarks/bench_faithfulness.py``) and the CI tests use this code, and so
can anyone auditing a model. captum and pytorch-grad-cam (the ``test`` extra) are imported only by the baselines
that need them."""
