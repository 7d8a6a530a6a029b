import sys

from sd_img2img.cli import main

sys.exit(main())
