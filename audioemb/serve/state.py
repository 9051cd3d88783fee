"""What ``audioemb serve`` holds in memory: the index (reloaded when ``index add`` commits), clusters, map."""

from __future__ import annotations

import csv
import json
import logging
import os
import threading
from collections import Counter, defaultdict
from pathlib import Path

from .._index_store import read_current
from ..index import Index, IndexStoreError

log = logging.getLogger("audioemb.serve")
MAP_POINTS = 20000  # points on the page's map, drawn at random from larger indexes


class Collection:
    """An index opened for serving. :meth:`current` returns the committed version, reopening it (with the
    already loaded model) when ``current.json`` changed, so searches keep answering while a writer adds."""

    def __init__(self, index_path: str | os.PathLike, root: str | os.PathLike | None = None,
                 clusters: str | os.PathLike | None = None, model=None, device: str = "auto"):
        self.path = Path(index_path)
        self._lock = threading.Lock()
        try:
            self._stamp = self._current_stamp()
        except FileNotFoundError:
            read_current(self.path)  # raises the error that says what the folder is instead
            raise
        self.version = self._read_version()
        self._index = Index.load(self.path, model=model, device=device)
        self.model = self._index.model  # loaded now: a model that cannot be loaded fails at start, not mid-search
        self._root_override = Path(root) if root is not None else None
        self._refresh_files()
        self.clusters_dir = Path(clusters) if clusters is not None else None
        self.clusters = read_clusters(self.clusters_dir) if self.clusters_dir else None
        if self.clusters is not None:
            self._check_clusters()
        self._map: tuple[object, dict] | None = None

    def _check_clusters(self) -> None:
        """Refuse clusters of another collection (or of files since removed): their items would not play."""
        paths = {it["path"] for m in self.clusters["members"].values() for it in m}
        missing = sorted(paths - set(self.files))
        if missing:
            raise ValueError(f"{self.clusters_dir}: {len(missing)} of the {len(paths)} clustered files are not in "
                             f"the index {self.path} (e.g. {missing[0]!r}); cluster this index: `audioemb cluster "
                             f"{self.path} -o DIR`")

    def _read_version(self) -> int:
        return int(json.loads((self.path / "current.json").read_text())["version"])

    def _current_stamp(self) -> tuple[int, int]:
        st = (self.path / "current.json").stat()
        return st.st_mtime_ns, st.st_size

    def _refresh_files(self) -> None:
        idx = self._index
        self.root = self._root_override or Path(idx.info["root"])
        self.files = {f["path"]: f for f in idx.files}

    def current(self) -> Index:
        """The index's committed version (reopened after a writer swapped ``current.json``)."""
        try:
            stamp = self._current_stamp()
        except FileNotFoundError:
            return self._index
        if stamp != self._stamp:
            with self._lock:
                if stamp != self._stamp:
                    try:
                        version = self._read_version()
                        fresh = Index.load(self.path, model=self.model)  # same model, checked by its sha256
                    except IndexStoreError as e:  # e.g. rebuilt with another model: keep serving what we have
                        log.warning("%s: keeping version already loaded: %s", self.path, e)
                        self._stamp = stamp
                        return self._index
                    self._index, self._stamp, self.version = fresh, stamp, version
                    self._refresh_files()
        return self._index

    def map_data(self) -> dict:
        """The 2-D map: the clusters folder's ``map.json`` when given, else a PCA of the index's vectors."""
        from ..cluster_report import map_data, project_2d

        if self.clusters and self.clusters.get("map"):
            return self.clusters["map"]
        idx = self.current()
        if self._map is not None and self._map[0] is idx:
            return self._map[1]
        vecs, items = idx.sample(MAP_POINTS)  # only the drawn rows are read: the index may exceed memory
        pick, xy = project_2d(vecs, max_points=MAP_POINTS)
        data = map_data([items[i] for i in pick], xy, None, [])
        self._map = (idx, data)
        return data


def read_clusters(folder: Path) -> dict:
    """A folder written by ``audioemb cluster``: summary, clusters with names and exemplars, members, map."""
    from ..cluster_report import cluster_names

    folder = Path(folder)
    try:
        exemplars = json.loads((folder / "exemplars.json").read_text())
        summary = json.loads((folder / "summary.json").read_text())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{folder}: not an `audioemb cluster` output ({Path(e.filename).name} missing)") \
            from None
    names = cluster_names(exemplars)
    for c, name in zip(exemplars, names):
        c.setdefault("name", name)
    members: dict[int, list[dict]] = {c["cluster"]: [] for c in exemplars}
    with open(folder / "assignments.csv", newline="") as f:
        for row in csv.DictReader(f):
            item = {"path": row["path"], "distance": float(row["distance"])}
            if "start" in row:
                item.update(start=float(row["start"]), end=float(row["end"]))
            members.setdefault(int(row["cluster"]), []).append(item)
    for m in members.values():
        m.sort(key=lambda it: it["distance"])
    votes: dict[str, Counter] = defaultdict(Counter)  # a file's cluster: the one most of its segments are in
    for c, m in members.items():
        for it in m:
            votes[it["path"]][c] += 1
    mp = json.loads((folder / "map.json").read_text()) if (folder / "map.json").exists() else None
    return {"summary": summary, "clusters": exemplars, "members": members, "map": mp,
            "of_file": {p: v.most_common(1)[0][0] for p, v in votes.items()}}
