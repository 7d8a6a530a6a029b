"""sd-img2img: Stable Diffusion image-to-image that shows every denoising step.

Importing the package loads no model and does not import torch/diffusers: the engine lives in
``sd_img2img.engine``.
"""

__version__ = "0.1.0"
