"""The web page: layout, what each event does, its run-time state, the explain table, examples and styles.
``import sd_img2img.ui.app`` loads no model."""
