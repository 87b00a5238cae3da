"""Untrusted text made safe to print: delivered file names, paths, codes and comments that
users typed reach terminals, logs and Prefect's markdown.

A name may hold an escape sequence (``\\x1b[2J`` clears a terminal, OSC 52 writes to the
clipboard), a carriage return that overwrites what was printed, a newline that forges a
line, or bidirectional-override characters that reorder what is shown. `escape` makes
each of them a visible escape, so what is printed is one line showing exactly what the
name holds.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls (U+009B is a one-character CSI), line and paragraph
# separators, bidirectional embeddings/overrides/isolates, and lone surrogates (undecodable
# bytes of a file name, as os.fsdecode gives them).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Characters markdown (CommonMark and GitHub tables) gives a meaning to.
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~])")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the byte it stands for
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: object) -> str:
    """`text` (made a string) with every control character shown as an escape (``\\n``,
    ``\\x1b``, ``\\u202e``): safe for a terminal or a log line, and always one line."""
    value = str(text)
    if value.isprintable() or not _UNSAFE.search(value):
        return value
    return _UNSAFE.sub(_visible, value)


def escape_markdown(text: object) -> str:
    """`escape`, then markdown's special characters backslash-escaped: the text shows
    literally in a markdown document (and in a table cell)."""
    return _MARKDOWN.sub(r"\\\1", escape(text))
