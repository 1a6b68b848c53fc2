"""No markup injection: user-controlled text is shown literally (app/safe_text.py), also for the
crafted links ``?model=[x](http://evil)`` and ``?dataset=![](http://evil/img.png)``."""
from __future__ import annotations

import os
import re

import pytest

from app.safe_text import md

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNESCAPED = re.compile(r"(?<!\\)[\[\]()!<>`*_:$]")  # Markdown / HTML syntax not preceded by a backslash


@pytest.mark.parametrize("text", ["[x](http://evil)", "![](http://evil/img.png)", "<img src=x onerror=alert(1)>",
                                  ":red[big] :material/home: $x^2$ **b** `c`", "# heading\n- item\r\n> quote",
                                  "www.evil.example", "a\\](http://evil)"])
def test_md_escapes_every_markup_character(text):
    out = md(text)
    assert "\n" not in out and "\r" not in out
    assert not UNESCAPED.search(out.replace("\\\\", "")), out
    # unescaping gives the text back (line breaks as spaces): nothing is lost, only neutralised
    assert re.sub(r"\\(.)", r"\1", out) == re.sub(r"[\r\n]+", " ", text)


def rendered_markdown(at) -> list[str]:
    """The Markdown source of every element that Streamlit renders as Markdown."""
    out = []
    for kind in ("markdown", "caption", "warning", "info", "error", "success", "title", "header", "subheader"):
        out += [str(e.value) for e in at.get(kind)]
    return out


@pytest.mark.parametrize("query", [{"model": "[x](http://evil)"}, {"dataset": "![](http://evil/img.png)"},
                                   {"fusion": "<img src=http://evil/i.png>", "K": "[k](http://evil)"},
                                   {"lesson": "[l](javascript:alert(1))", "estimator": "![e](http://evil)"}])
def test_crafted_links_show_as_plain_text(query):
    AppTest = pytest.importorskip("streamlit.testing.v1").AppTest
    at = AppTest.from_file(os.path.join(ROOT, "app", "streamlit_app.py"), default_timeout=60)
    at.query_params.update(query)
    at.run(timeout=60)
    assert not at.exception, [e.value for e in at.exception]
    notes = [w.value for w in at.warning]
    assert len(notes) == len(query), notes  # each bad value is reported ...
    for text in rendered_markdown(at):
        assert "](" not in text.replace("\\](", ""), text  # ... and no link or image is formed
        assert "http://" not in text and not re.search(r"(?<!\\)<[A-Za-z/!?]", text), text  # no autolink, no HTML
