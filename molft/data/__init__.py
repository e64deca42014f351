"""Reading tables, featurized datasets on disk, benchmark datasets and splits."""
