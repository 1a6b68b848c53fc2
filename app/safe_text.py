"""User-controlled text (URL parameters, file names, curve names, uploaded metadata, error messages
quoting them) shown inside Markdown without being interpreted as Markdown or HTML.

Streamlit renders ``st.markdown``, ``st.caption``, ``st.info`` / ``st.warning`` / ``st.error``,
labels and titles as GitHub-flavoured Markdown, so ``[x](http://evil)`` becomes a live link and
``![](http://evil/img.png)`` makes the browser fetch an image. :func:`md` backslash-escapes every
ASCII punctuation character (CommonMark, sec. 2.4: any ASCII punctuation may be escaped, and
then stands for itself), which also breaks GFM's literal autolinks (``http://``, ``www.``),
Streamlit's ``:material/...:`` icons and ``:red[...]`` colours, ``$`` maths and raw HTML, and
turns line breaks into spaces so no block (heading, list, table, code) can start. Where plain
text is enough, ``st.text`` / ``st.code`` show text as it is, with no escaping needed.
"""
from __future__ import annotations

import re

_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")  # every ASCII punctuation character
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def md(text: object) -> str:
    """``text`` (any object, shown via ``str``) escaped so Markdown shows it literally, on one line."""
    return _PUNCTUATION.sub(r"\\\1", _LINE_BREAKS.sub(" ", str(text)))
