"""The models served past one machine: the page's ``Backend`` (``engine.backend``) on Ray Serve model workers.

- ``options``: how many workers, where they run (``RayOptions``; no Ray import);
- ``wire``: what travels between the page and a worker: a prepared request, step frames and results as plain data
  and encoded pictures (no Ray import);
- ``worker``: a Serve replica serving one model (``ModelWorker``) and the board that carries Stop to it (``RunBoard``);
- ``cluster``: joining a Ray cluster, or starting a local one that listens on loopback only, and deploying the workers;
- ``backend``: ``RayBackend``, what the page calls.

Ray is imported by ``worker``, ``cluster`` and ``backend`` only, and only when a Ray backend is made: the in-process
default (``engine.backend.LocalBackend``) never imports it.
"""
