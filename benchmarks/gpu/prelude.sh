# Sourced by the lent-GPU scripts (session.sh, continue.sh, variants.sh), run from the repository root: install
# the carried wheels (.whl) unless NO_WHEELS is set, map the package as pyproject does, and decode the carried
# Opus corpus subset (.gpu/corpus) into /tmp/corpus once per machine (unpack.py; its log in /tmp/logs).
mkdir -p /tmp/runs /tmp/logs
[ -n "${NO_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
ln -sfn ../cli audioemb/cli; ln -sfn ../pretrained audioemb/pretrained  # what pyproject's package-dir maps
export PYTHONPATH=$PWD:/tmp/site
[ -d /tmp/corpus ] || python3 benchmarks/gpu/unpack.py .gpu/corpus /tmp/corpus > /tmp/logs/unpack.log 2>&1 \
  || { cat /tmp/logs/unpack.log; exit 1; }
