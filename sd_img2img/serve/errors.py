"""What Ray's and Serve's exceptions mean to a visitor: one message each, in the engine's own error types (which the
page shows as they are). A worker's own ``UserInputError``/``ModelLoadError``/``GenerationError`` comes back as it
was raised, without Ray's wrapping and the worker's traceback."""

from __future__ import annotations

from sd_img2img.errors import GenerationError, ModelLoadError, UserInputError

OWN_ERRORS = (UserInputError, ModelLoadError, GenerationError)


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0]}" if text else type(error).__name__


def page_error(error: BaseException, what: str) -> BaseException:
    """The exception to raise to the page for ``error``, raised by Ray while ``what`` ("this run") went on."""
    import ray.exceptions as rex
    from ray.serve import exceptions as sex

    if isinstance(error, OWN_ERRORS) and not isinstance(error, rex.RayError):
        return error
    if isinstance(error, rex.RayTaskError):
        cause = error.cause
        if isinstance(cause, OWN_ERRORS):
            return cause
        if cause is not None and not isinstance(cause, rex.RayError):
            return GenerationError(f"{what} failed on its model worker: {first_line(cause)}")
    if isinstance(error, (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, sex.ReplicaUnavailableError)):
        return GenerationError(
            f"the model worker running {what} stopped before it finished (its process ended); nothing else was "
            "lost: run it again and another worker takes it (Ray Serve starts a new one in its place)"
        )
    if isinstance(error, sex.BackPressureError):
        return GenerationError("every model worker is busy and their queue is full; try again in a minute")
    if isinstance(error, sex.DeploymentUnavailableError):
        return ModelLoadError("the model's workers are not deployed (the page's Ray backend was stopped)")
    if isinstance(error, rex.TaskCancelledError):
        return GenerationError(f"{what} was cancelled on its model worker")
    if isinstance(error, (KeyboardInterrupt, SystemExit, GeneratorExit)):
        return error
    return GenerationError(f"{what} failed on its model worker: {first_line(error)}")
