"""The sd-img2img web demo: Stable Diffusion img2img with every denoising step on show.

    python app.py --model random            # offline: a tiny random-weight checkpoint (pictures are noise)
    python app.py --model stable-diffusion-v1-5/stable-diffusion-v1-5 --host 0.0.0.0

The entry Hugging Face Spaces runs; the page itself is ``sd_img2img.ui``.
"""

import sys

from sd_img2img.settings import parse_settings

if __name__ == "__main__":
    settings = parse_settings(sys.argv[1:], prog="python app.py")  # a bad flag is answered before the libraries load
    from sd_img2img.ui.app import serve

    serve(settings)
