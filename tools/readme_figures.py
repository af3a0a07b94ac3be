#!/usr/bin/env python
"""Run the demos whose pictures the README shows and copy their ``comparison.png`` (enlarged 3x, nearest) to
``docs/images/`` — the README's images are the demos' own outputs.

    python tools/readme_figures.py          # about a minute on a CPU
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
DEMOS = {  # README image -> demo config
    "inpaint_demo.png": "configs/inpaint/demo.yaml",
    "edit_regions_demo.png": "configs/edit/demo_regions.yaml",
}


def main() -> None:
    out = REPO / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for image, config in DEMOS.items():
            run = Path(tmp) / Path(image).stem
            subprocess.run([sys.executable, "-m", "dreamsampler.cli", "fit", "-c", config,
                            f"--trainer.default_root_dir={run}", "--trainer.enable_progress_bar=false"],
                           cwd=REPO, check=True, capture_output=True)
            img = Image.open(run / "comparison.png").convert("RGB")
            img.resize((img.width * 3, img.height * 3), Image.NEAREST).save(out / image, optimize=True)
            print(f"{config} -> {out / image}")


if __name__ == "__main__":
    main()
