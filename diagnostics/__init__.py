"""Checks for `elt doctor`: pure functions over the project, the warehouse and the
sources, returning results (name, section, status, detail, hint); no click, no printing,
no exit. `plan` decides which checks run, `runner` runs them concurrently with deadlines.
"""
