"""REPORT.md and report.html from the templates in templates/: the header, then each section under its heading. The
HTML escapes every value it is given (autoescape); a section's body is Markdown, converted by Python-Markdown (raw
HTML in it shown as text) with its figures embedded as data URIs, so report.html is one self-contained file."""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import markdown
from jinja2 import Environment, PackageLoader, select_autoescape
from markdown.treeprocessors import Treeprocessor
from markupsafe import Markup

from cnnlab.reporting.sections import Section


class _EmbedImages(Treeprocessor):
    def __init__(self, md: markdown.Markdown, base_dir: Path):
        super().__init__(md)
        self.base_dir = base_dir

    def run(self, root: Element) -> None:
        for img in root.iter("img"):
            path = self.base_dir / img.get("src", "")
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            img.set("src", f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}")


def _to_html(text: str, base_dir: Path) -> Markup:
    md = markdown.Markdown(extensions=["tables", "fenced_code", "toc"])
    md.treeprocessors.register(_EmbedImages(md, base_dir), "cnnlab_embed_images", 0)
    # raw HTML in a body (a label, a path, an error message) is shown as text, never run as markup
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    # marked safe: Python-Markdown escapes the text of a body, raw HTML included
    return Markup(md.convert(text))  # noqa: S704


def _environment(base_dir: Path) -> Environment:
    env = Environment(
        loader=PackageLoader("cnnlab.reporting", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["markdown"] = lambda text: _to_html(text, base_dir)
    return env


def render_markdown(head: Mapping[str, Any], sections: Sequence[Section]) -> str:
    text = _environment(Path()).get_template("report.md").render(**head, sections=sections)
    return text.strip() + "\n"


def render_html(head: Mapping[str, Any], sections: Sequence[Section], base_dir: Path) -> str:
    """`base_dir` is where the sections' image links point from: every image ends up inside the page."""
    env = _environment(base_dir)
    header = env.filters["markdown"](env.get_template("header.md").render(**head))
    return env.get_template("report.html").render(**head, header=header, sections=sections)
