# geoplatform: the two commands of the README, and the benchmarks.
#   make demo   build the bundled sample city into the embedded store, query it, and
#               serve it as OGC API Features on http://127.0.0.1:5000 (Ctrl-C stops)
#   make test   the whole test suite
# Both set up everything they need on a fresh machine (a virtualenv in .venv).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat setup.cfg setup.py | cksum | cut -d' ' -f1)
STORE  ?= var/lanshan

.PHONY: demo test bench bench-index bench-server bench-grid system-deps clean

$(STAMP): setup.cfg setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet -e '.[dev,postgis,raster,dask,server]'
	rm -f $(VENV)/.installed-*
	touch $@

PORT   ?= 5000

# The demo serves on 127.0.0.1 as a city intranet: callers without credentials read every
# department's shared data (not the restricted; see "Who sees what" in the README).
demo: $(STAMP)
	$(BIN)/geoplatform demo --store $(STORE)
	GEOPLATFORM_ANONYMOUS_ROLES='{"*": "reader"}' $(BIN)/geoplatform serve --store $(STORE) --host 127.0.0.1 --port $(PORT)

test: $(STAMP) system-deps
	$(BIN)/python -m pytest -q -p no:cacheprovider

# From Debian's packages: QGIS's Python bindings (the tests drive the server
# with QGIS), PostGIS for the PostgreSQL 15 that runs on the machine and GDAL's
# ogr2ogr (benchmark anchors).
SYSTEM_PACKAGES := python3-qgis postgresql-15-postgis-3 gdal-bin
system-deps:
	@if ! dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES); \
	fi

bench: $(STAMP) system-deps
	$(BIN)/python benchmarks/bench_cube.py

bench-index: $(STAMP)
	$(BIN)/python benchmarks/bench_index.py

# The grid benchmark: the gridded-data store (and the station series) against plain xarray,
# pandas and pygeoapi's xarray EDR provider (the server extra), same data, same run.
bench-grid: $(STAMP)
	$(BIN)/python benchmarks/bench_grid.py

# The OGC API server benchmark: wrk from Debian, pygeoapi's provider dependencies
# (the bench extra) and tipg in its own virtualenv, benchmarks/.venv-tipg (tipg pins
# its own FastAPI, Starlette and pydantic).
TIPG_VENV := benchmarks/.venv-tipg
bench-server: $(STAMP) system-deps
	@if ! dpkg -s wrk >/dev/null 2>&1; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; \
	fi
	$(BIN)/python -c 'import s3fs, psycopg2, mapbox_vector_tile' 2>/dev/null || $(BIN)/python -m pip install --quiet -e '.[bench]'
	test -x $(TIPG_VENV)/bin/uvicorn || { $(PYTHON) -m venv $(TIPG_VENV) && \
		$(TIPG_VENV)/bin/python -m pip install --quiet 'tipg==1.6.1' 'uvicorn[standard]'; }
	$(BIN)/python benchmarks/bench_server.py

clean:
	rm -rf var/ .pytest_cache
