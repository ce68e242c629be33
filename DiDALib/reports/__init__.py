"""What a run shows outside Slicer: ``figures`` (the DiDA View figure, the paper's Figure 5, as a PNG)."""
