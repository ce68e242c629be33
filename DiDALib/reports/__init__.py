"""What a run shows outside Slicer: ``figures`` (the DiDA View figure, the paper's Figure 5, as a PNG),
``map_figures`` (the contrast, feature-scale and en-face figures) and ``html`` (the interactive DiDA View page,
``report.html``, made from ``page_data``)."""
