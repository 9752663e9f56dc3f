"""Per-part memory systems and cycle estimates (issue 12): the trial's profile re-weighted for each
candidate catalog part. :mod:`mcusearch.parts.memory` (families as data, a part's memory
configuration) and :mod:`mcusearch.parts.estimate` (profiles to collect, cycles per part)."""
