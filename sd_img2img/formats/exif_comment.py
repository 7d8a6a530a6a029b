"""The EXIF UserComment of a JPEG or WebP (or any image with EXIF): where AUTOMATIC1111, Fooocus and SwarmUI put their
settings text when they save a format without PNG's text chunks.

AUTOMATIC1111 writes it with piexif into the Exif IFD (tag 0x9286 under 0x8769): ``UNICODE\\0`` and the text in
UTF-16, big-endian; other writers give it the EXIF block's own byte order, a byte-order mark, or the ``ASCII\\0\\0\\0``
prefix. Fooocus writes it with Pillow into the first IFD, as text without a prefix, with its metadata scheme in
MakerNote (0x927C). Each is decoded strictly: text that does not decode in the encoding its prefix names is refused
with the reason, never read as something else.
"""

from __future__ import annotations

from PIL import Image

from sd_img2img.formats.settings_reader import MAX_CHUNK_CHARS

EXIF_IFD = 0x8769
USER_COMMENT = 0x9286
MAKER_NOTE = 0x927C
MAX_USER_COMMENT_BYTES = 2 * MAX_CHUNK_CHARS + 8  # longer than the longest text read (as UTF-16): skipped

# EXIF's character codes: the eight bytes a UserComment starts with, and what they are called
PREFIXES = {b"UNICODE\0": "UNICODE", b"ASCII\0\0\0": "ASCII", b"JIS\0\0\0\0\0": "JIS", b"\0" * 8: "undefined"}


class CommentUnreadable(ValueError):
    """A UserComment is there but does not decode; the message says how it was written and why."""


def exif_texts(image: Image.Image) -> tuple[dict[str, str], list[str]]:
    """The settings text an image's EXIF carries: its UserComment as ``parameters`` (the key PNGs use) and Fooocus'
    MakerNote scheme as ``fooocus_scheme``, and notes on what was there and could not be read.

    Args:
        image: an open image (its EXIF is read from the header; no pixel is decoded).
    """
    try:
        exif = image.getexif()
        raw = exif.get_ifd(EXIF_IFD).get(USER_COMMENT, exif.get(USER_COMMENT))
        scheme = exif.get(MAKER_NOTE)
    except Exception as e:  # Pillow's EXIF parser on damaged data: struct.error, SyntaxError, ValueError, …
        return {}, [f"its EXIF data is damaged ({type(e).__name__}); not read"]
    if raw is None:
        return {}, []
    if len(raw) > MAX_USER_COMMENT_BYTES:
        return {}, [
            f"its EXIF UserComment is {len(raw):,} bytes long, more than any settings take (at most "
            f"{MAX_USER_COMMENT_BYTES:,}); skipped"
        ]
    try:
        text = user_comment_text(raw)
    except CommentUnreadable as e:
        return {}, [f"its EXIF UserComment could not be decoded ({e}); not read"]
    texts = {"parameters": text} if text.strip() else {}
    if isinstance(scheme, (str, bytes)) and len(scheme) < 64:
        scheme = scheme.decode("latin-1") if isinstance(scheme, bytes) else scheme
        texts["fooocus_scheme"] = scheme.strip("\0 ")
    return texts, []


def user_comment_text(raw: bytes | str) -> str:
    """A UserComment's text, decoded as its prefix says (``CommentUnreadable`` if it does not decode).

    Args:
        raw: the tag's value as Pillow gives it: bytes (type UNDEFINED) or text (a writer that stored it as ASCII).
    """
    if isinstance(raw, str):
        return raw.rstrip("\0")
    if not isinstance(raw, bytes):
        raise CommentUnreadable(f"a {type(raw).__name__}, not text")
    code = PREFIXES.get(raw[:8])
    body = raw[8:] if code else raw
    encoding = {"UNICODE": "UTF-16", "JIS": "Shift JIS"}.get(code or "", "UTF-8")  # ASCII is often UTF-8 in practice
    try:
        text = _utf16(body) if code == "UNICODE" else body.decode("shift_jis" if code == "JIS" else "utf-8")
    except UnicodeDecodeError as e:
        written = f"{code}-prefixed" if code else "without a prefix"
        raise CommentUnreadable(f"{written}, {len(raw):,} bytes, not valid {encoding}: {e.reason}") from None
    return text.rstrip("\0")


def _utf16(body: bytes) -> str:
    """UTF-16 in the byte order its byte-order mark says, or else the one its zero bytes show (ASCII-range text has a
    zero byte first in big-endian, second in little-endian), big-endian (AUTOMATIC1111's) when they do not tell."""
    if body[:2] in (b"\xfe\xff", b"\xff\xfe"):
        return body.decode("utf-16")
    if len(body) % 2 and body.endswith(b"\0"):
        body = body[:-1]
    even, odd = body[0::2].count(0), body[1::2].count(0)
    return body.decode("utf-16-le" if odd > even else "utf-16-be")
