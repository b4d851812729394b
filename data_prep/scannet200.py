"""Convert the raw ScanNet release into training caches.

    python data_prep/scannet200.py --raw RAW --out OUT [--splits DIR] [--label-map TSV]
                                   [--workers N] [--force] [--align]
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pcseg.data.prep import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
