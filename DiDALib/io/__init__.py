"""Files in and out: ``volume`` (the OCT volume type and intensity rules), ``registry`` (the supported formats,
format detection and ``load_oct``), one reader module per source (``heyex_vol``, ``heyex_xml``, ``heyex_e2e`` with
``heyex`` for what they share, ``dicom``, ``images``, ``itk``; ``common`` for what every reader needs), and
``results`` (the files a run writes, and reading them back). Reading never loads torch."""
