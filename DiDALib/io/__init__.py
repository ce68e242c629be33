"""Files in and out: ``volume`` (the OCT volume type and intensity rules), ``registry`` (the supported formats,
format detection and ``load_oct``), one reader module per source (``heyex_vol``, ``heyex_xml``, ``heyex_e2e`` with
``heyex`` for what they share, ``dicom``, ``images``, ``itk``; ``common`` for what every reader needs),
``results`` (the files a run writes, and reading them back), and the rules of every DiDA folder write:
``output_dir`` (staging, the lock, the final move, what ``force`` may replace), ``no_replace`` (a rename that
never replaces) and ``signals`` (stop signals as an exception). Reading never loads torch."""
