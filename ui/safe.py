"""User-controlled text in the app, shown as exactly its characters (never as markdown or HTML).

Corpus text, ids, metadata column names and values, file names and paths, dataset and scoring names,
arm labels from a spec, and error messages that quote any of these are user-controlled. Streamlit
renders markdown in ``st.markdown`` / ``caption`` / ``error`` / ``info`` / ``warning`` / ``success`` /
``toast``, in widget, expander, metric and tab labels, in radio options and in progress text: links,
remote images, emoji and colour directives, LaTeX. Plotly renders a subset of HTML (links, bold, line
breaks) in titles, legends, tick labels and hover text.

So: long text goes to ``st.text`` / ``st.code`` / ``st.dataframe`` (which render nothing); a user
string inside markdown goes through ``md``; a user string inside a figure goes through ``html``.
Pure functions (no Streamlit import), so ``ui.figures`` can use them too.
"""

from __future__ import annotations

import html as _html
import re
from typing import Any

# Every ASCII punctuation character may be backslash-escaped in CommonMark, and an escaped one always
# renders as itself, so escaping all of them neutralises links, images, emphasis, headings, lists,
# tables, HTML, Streamlit's :emoji: / :color[...]: directives and $LaTeX$.
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
# GitHub-flavoured markdown also links bare URLs and e-mail addresses in plain text (after escapes are
# resolved, so a backslash does not stop it); an invisible word joiner inside the trigger does.
_JOINER = "\u2060"
_AUTOLINK = re.compile(r"(?i)(?<=[a-z0-9])(?=\\:\\/\\/)|(?<=www)(?=\\\.)|(?=\\@)")


def md(text: Any) -> str:
    """``text`` escaped for any place Streamlit renders markdown: it shows exactly these characters.

    Line breaks are kept as line breaks. ``None`` is the empty string.
    """
    if text is None:
        return ""
    escaped = _PUNCTUATION.sub(r"\\\1", str(text))
    escaped = _AUTOLINK.sub(_JOINER, escaped)
    return escaped.replace("\r\n", "\n").replace("\n", "  \n")


def html(text: Any) -> str:
    """``text`` escaped for plotly's HTML-like labels (titles, legends, ticks, hover): shown literally."""
    return _html.escape("" if text is None else str(text), quote=False)
