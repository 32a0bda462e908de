"""The worker side of the job execution contract: what every job worker imports.

It ships in the notebook-side distribution because job workers run the
workspace's own image (a Volcano pod runs the template's image, not the hub's);
it needs nothing but the standard library and cloudpickle.
"""
