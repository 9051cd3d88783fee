"""The cluster map as a labelled PNG (matplotlib, optional) and as a self-contained interactive HTML page.

The HTML page embeds the same drawing code as ``audioemb serve``'s map (``serve/static/map.js``) and the
map's data; a click plays the nearest sound from the collection's folder (``file://``).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from .fsio import atomic_write

MAP_JS = Path(__file__).parent / "serve" / "static" / "map.js"


def write_png_map(mp: dict, out: str | os.PathLike, title: str = "") -> str | None:
    """A PNG scatter of the map, each cluster labelled with its name and size at its centre. Returns the
    file's path, or None when matplotlib is not installed (the ``[plot]`` extra)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return None
    x, y, c = np.asarray(mp["x"]), np.asarray(mp["y"]), np.asarray(mp["cluster"])
    fig = Figure(figsize=(9, 7), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    k = max(int(c.max()) + 1, 1) if len(c) else 1
    cmap, top = ("tab10", 10) if k <= 10 else ("tab20", 20) if k <= 20 else ("turbo", k)
    ax.scatter(x, y, c=c, cmap=cmap, vmin=-0.5, vmax=top - 0.5, s=float(np.clip(4000 / max(len(x), 1), 4, 40)),
               alpha=0.75, linewidths=0)
    span = np.array([np.ptp(x) or 1.0, np.ptp(y) or 1.0])
    placed: list[np.ndarray] = []
    for cl in mp["clusters"]:
        sel = c == cl["id"]
        if not sel.any():
            continue
        at = np.array([np.median(x[sel]), np.median(y[sel])])
        while any(abs(at[0] - p[0]) < 0.15 * span[0] and abs(at[1] - p[1]) < 0.035 * span[1] for p in placed):
            at[1] -= 0.04 * span[1]  # move a label off one already placed nearby
        placed.append(at.copy())
        ax.annotate(f"{cl['name']} ({cl['size']})", (float(at[0]), float(at[1])), ha="center", va="center",
                    fontsize=8, weight="bold",
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": "none", "alpha": 0.75})
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    ax.set_title(title + f" ({mp.get('projection', 'PCA')})")
    fig.tight_layout()
    atomic_write(out, lambda tmp: fig.savefig(tmp, format="png"))
    return str(out)


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px sans-serif; margin: 16px; color: #222; }}
#wrap {{ display: flex; gap: 16px; align-items: flex-start; }}
canvas {{ border: 1px solid #ccc; max-width: 100%; }}
#side {{ min-width: 260px; }}
#legend div {{ margin: 2px 0; cursor: pointer; }}
#legend span {{ display: inline-block; width: 10px; height: 10px; margin-right: 6px; }}
#now {{ word-break: break-all; margin: 8px 0; }}
</style></head><body>
<h2>{title}</h2>
<p>Click a point to play it. {note}</p>
<div id="wrap"><canvas id="map" width="900" height="650"></canvas>
<div id="side"><audio id="player" controls></audio><div id="now"></div><div id="legend"></div></div></div>
<script>{js}</script>
<script>
const data = {data};
const player = document.getElementById("player"), now = document.getElementById("now");
function fileUrl(p) {{
  if (!data.root) return null;
  const full = (data.root.replace(/\\/+$/, "") + "/" + p).split("/").map(encodeURIComponent).join("/");
  return "file://" + full;
}}
const view = AudioembMap.draw(document.getElementById("map"), data, function (i) {{
  const p = data.paths[data.path[i]], s = data.start[i], e = data.end[i];
  now.textContent = p + (e > 0 ? ` (${{s.toFixed(1)}}-${{e.toFixed(1)}} s)` : "");
  const url = fileUrl(p);
  if (url) {{ player.src = url + (e > 0 ? `#t=${{s}},${{e}}` : ""); player.play().catch(() => {{}}); }}
}});
const legend = document.getElementById("legend");
for (const c of data.clusters) {{
  const d = document.createElement("div");
  d.innerHTML = `<span style="background:${{AudioembMap.colour(c.id)}}"></span>`;
  d.appendChild(document.createTextNode(`${{c.id}}: ${{c.name}} (${{c.size}})`));
  legend.appendChild(d);
}}
</script></body></html>
"""


def write_html_map(mp: dict, out: str | os.PathLike, title: str = "") -> str:
    """A self-contained interactive map (no network): click a point to play it from the collection folder."""
    note = ("Sounds play from " + html.escape(mp["root"]) + "." if mp.get("root") else
            "The collection folder is unknown (pass --root to `audioemb cluster`), so points show their path "
            "only; `audioemb serve` plays them.")
    data = json.dumps(mp, ensure_ascii=False).replace("</", "<\\/")
    atomic_write(out, _PAGE.format(title=html.escape(title), note=note, js=MAP_JS.read_text(), data=data))
    return str(out)
