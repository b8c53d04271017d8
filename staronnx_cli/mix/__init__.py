"""Several models at once on shared workers (`sweep --mix`): the mix file, its schedules, points and sweep."""
