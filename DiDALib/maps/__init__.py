"""Maps from a result's d values: ``mixing`` (Grid and Mixed Images, one saturation scale), ``colour`` (the one
colour rule for evidence, RGB renderings and overlays) and ``labels`` (Mixed Images as labelmap values and the
two-dimensional colour table Slicer reads). Needs numpy only."""
