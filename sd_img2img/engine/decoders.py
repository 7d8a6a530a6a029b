"""How a loaded model's step latents become pictures: the preview decoder for ``approx``, ``taesd`` or ``full``, with
the tiny autoencoder the ``taesd`` preview needs loaded once (or the pipelines' own, when ``--vae tiny`` made it
that one)."""

from __future__ import annotations

from sd_img2img.engine.previews import PreviewDecoder
from sd_img2img.errors import UserInputError
from sd_img2img.models.loading import LoadedModel, load_taesd
from sd_img2img.plan.checks import check_preview


class TinyDecoder:
    """The tiny autoencoder (``AutoencoderTiny``) a loaded model's ``taesd`` preview decodes with, loaded on first use.

    Args:
        loaded: the model.
        taesd: hub id or folder of the tiny autoencoder.
    """

    def __init__(self, loaded: LoadedModel, taesd: str):
        self.loaded = loaded
        self.taesd = taesd
        self._model = None

    def get(self):
        if self._model is None:
            lm = self.loaded
            if not self.taesd:
                raise UserInputError(
                    f"no tiny autoencoder (TAESD) in diffusers' format is known for {lm.family.label}; use preview "
                    "'approx' or 'full', or give one with --taesd"
                )
            if lm.vae_kind == "tiny" and lm.taesd == self.taesd:  # the pipelines' own VAE is that TAESD
                self._model = lm.vae
            else:
                hint = "use preview 'approx' or 'full'"
                self._model = load_taesd(self.taesd, lm.dtype, "the taesd preview", hint).to(lm.execution_device)
        return self._model


def preview_decoder(lm: LoadedModel, preview: str, tiny: TinyDecoder) -> PreviewDecoder:
    """The decoder of ``preview`` on ``lm``: its family's ``approx`` factors, the tiny autoencoder, or its VAE."""
    check_preview(preview)
    return PreviewDecoder(
        preview,
        vae=lm.vae,
        taesd=tiny.get() if preview == "taesd" else None,
        device=lm.execution_device,
        lock=lm.lock,
        factors=lm.family.approx_factors,
        bias=lm.family.approx_bias,
        frames=lm.family.latent_frames,
    )
