"""Reports built from results files (never from live objects): renderers only format."""
