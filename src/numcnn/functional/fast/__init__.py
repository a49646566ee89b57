"""The fast kernel paths, behind :mod:`numcnn.functional.dispatch`; each is tested equal to
its readable reference in :mod:`numcnn.functional`."""
