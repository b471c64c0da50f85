"""Run by Debian's /usr/bin/python3 (which has QGIS): load an OGC API Features
layer from the server with QGIS's OAPIF provider and print what QGIS sees.

usage: qgis_count.py SERVER_URL COLLECTION
prints: <features iterated> <featureCount()> <layer CRS authid>
"""

import os
import sys

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from qgis.core import QgsApplication, QgsVectorLayer  # noqa: E402

url, collection = sys.argv[1], sys.argv[2]
app = QgsApplication([], False)
app.initQgis()
layer = QgsVectorLayer(f"url='{url}' typename='{collection}'", collection, "OAPIF")
if not layer.isValid():
    print("INVALID", layer.error().message())
    sys.exit(2)
count = sum(1 for _ in layer.getFeatures())
print(count, layer.featureCount(), layer.crs().authid(), flush=True)
# QGIS 3.22 can crash while tearing down a headless application; the answer is out.
os._exit(0)
