"""Render resources/icons/flowdeck.svg into the PNG sizes, .ico and .icns the bundles need.

Run once after changing the SVG and commit the results: the build and the
desktop install then need no renderer. Qt's own SVG renderer and image
plugins do the work, so no extra tool (Inkscape, Pillow, iconutil) is needed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QGuiApplication, QImage, QPainter  # noqa: E402
from PySide6.QtSvg import QSvgRenderer  # noqa: E402

ICONS = Path(__file__).resolve().parent.parent / "resources" / "icons"
SIZES = (16, 24, 32, 48, 64, 128, 256)


def render(renderer: QSvgRenderer, size: int) -> QImage:
    """One square, transparent, antialiased rendering of the SVG."""
    image = QImage(size, size, QImage.Format.Format_ARGB32)
    image.fill(Qt.GlobalColor.transparent)
    painter = QPainter(image)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    renderer.render(painter)
    painter.end()
    return image


def main() -> int:
    app = QGuiApplication.instance() or QGuiApplication(sys.argv[:1])  # noqa: F841
    renderer = QSvgRenderer(str(ICONS / "flowdeck.svg"))
    if not renderer.isValid():
        print(f"error: {ICONS / 'flowdeck.svg'} is not a valid SVG; fix it and run again.")
        return 1
    for size in SIZES:
        render(renderer, size).save(str(ICONS / f"flowdeck-{size}.png"))
    big = render(renderer, 256)
    for name in ("flowdeck.ico", "flowdeck.icns"):
        if not big.save(str(ICONS / name)):
            print(f"warning: this Qt cannot write {name}; the bundle for that system "
                  "will use the PNG instead.")
    print(f"wrote icons in {ICONS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
