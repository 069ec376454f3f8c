"""REPORT.md rendered as one self-contained HTML file: Python-Markdown for the text, figures embedded as data URIs."""

from __future__ import annotations

import base64
import html
import mimetypes
from pathlib import Path
from xml.etree.ElementTree import Element

import markdown
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 70rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.45; }
table { border-collapse: collapse; margin: 1rem 0; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.6rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
pre { background: #f7f7f7; padding: 0.8rem; overflow-x: auto; font-size: 0.8rem; }
img { max-width: 100%; }
"""


class _EmbedImages(Treeprocessor):
    def __init__(self, md: markdown.Markdown, base_dir: Path):
        super().__init__(md)
        self.base_dir = base_dir

    def run(self, root: Element) -> None:
        for img in root.iter("img"):
            path = self.base_dir / img.get("src", "")
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            img.set("src", f"data:{kind};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}")


class _EmbedImagesExtension(Extension):
    def __init__(self, base_dir: Path):
        super().__init__()
        self.base_dir = base_dir

    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Python-Markdown's name)
        md.treeprocessors.register(_EmbedImages(md, self.base_dir), "cnnlab_embed_images", 0)


def render_html(text: str, base_dir: Path, title: str) -> str:
    """`text` is Markdown whose image links are relative to `base_dir`; every image ends up inside the page, and
    headings get the ids that in-page links use."""
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "toc", _EmbedImagesExtension(base_dir)])
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n<title>{html.escape(title)}</title>\n'
        f"<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
