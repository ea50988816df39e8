"""Foreign-key cascades reproduced by the writer (docs/design.md, "Foreign-key cascades").

- :mod:`.setup`: the foreign-key graph from MySQL at start-up, the GSI per cascading foreign key
  and the cascade-records table;
- :mod:`.executor`: a parent change -> its children's changes at the parent's version, through
  the GSIs, level by level; snapshot rows a cascade already passed;
- :mod:`.order`: which consumed events may be applied now, so that a cascade runs after every
  earlier change of the tables it reaches and before any later one.
"""
