"""The plan: what a request will do, before any model is loaded — the request and its checks, the step rules and
the plan they make, the noise level the image enters at, the init image opened and fitted, the request prepared,
and this server's timing. Imports neither torch nor diffusers (the few answers that need a scheduler import
diffusers when asked for)."""
