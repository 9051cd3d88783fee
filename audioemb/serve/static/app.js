// The audioemb serve page: search by a collection file, a time range of one or an uploaded clip; listen to
// results; browse clusters and the map. Everything it needs comes from this server's /api routes.
"use strict";
const $ = (id) => document.getElementById(id);
const enc = encodeURIComponent;

async function api(url, opts) {
  const r = await fetch(url, opts);
  const body = r.headers.get("content-type")?.includes("json") ? await r.json() : await r.text();
  if (!r.ok) {
    const d = body && body.detail;
    throw new Error(typeof d === "string" ? d : (d ? JSON.stringify(d) : `HTTP ${r.status}`));
  }
  return body;
}

function fmt(s) { return s == null ? "" : `${Number(s).toFixed(2)} s`; }

function player(url, start, end) {
  const a = document.createElement("audio");
  a.controls = true;
  a.preload = "none";
  a.src = url + (end > 0 ? `#t=${start},${end}` : "");
  return a;
}

function setStatus(msg, error) {
  $("status").textContent = msg;
  $("status").className = error ? "error" : "";
}

// ---------------------------------------------------------------------------------------------- tabs
const loaded = {};
for (const b of document.querySelectorAll("nav button")) {
  b.onclick = () => {
    document.querySelectorAll("nav button").forEach((x) => x.classList.toggle("active", x === b));
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t.id === `tab-${b.dataset.tab}`));
    if (!loaded[b.dataset.tab]) { loaded[b.dataset.tab] = true; ({ clusters: loadClusters, map: loadMap }[b.dataset.tab] || (() => {}))(); }
  };
}

// ------------------------------------------------------------------------------------------- search
async function loadInfo() {
  try {
    const i = await api("/api/info");
    $("info").textContent = `${i.n_files} files, ${i.count} vectors · model ${i.model} · ${i.index_type} index` +
      (i.segments_s ? ` · ${i.segments_s} s segments` : "");
  } catch (e) { $("info").textContent = e.message; }
}

let filterTimer = null;
async function loadFiles(q) {
  const r = await api(`/api/files?limit=200&q=${enc(q || "")}`);
  const list = $("file-list");
  list.innerHTML = "";
  for (const f of r.files) {
    if (f.error) continue;
    const o = document.createElement("option");
    o.value = f.path;
    list.appendChild(o);
  }
}
$("file-input").addEventListener("input", () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => loadFiles($("file-input").value).catch(() => {}), 150);
});

function render(res) {
  const body = $("results").querySelector("tbody");
  body.innerHTML = "";
  for (const h of res.hits) {
    const tr = document.createElement("tr");
    tr.className = "hit";
    const cells = [[h.rank, "num"], [h.score.toFixed(4), "num score"], [h.path, "path"],
      [`${h.start.toFixed(2)}–${h.end.toFixed(2)} s`, "num"], [fmt(h.duration_s), "num"]];
    for (const [text, cls] of cells) {
      const td = document.createElement("td");
      td.className = cls;
      td.textContent = text;
      tr.appendChild(td);
    }
    const img = document.createElement("img");
    img.src = h.thumbnail_url; img.alt = "waveform"; img.width = 240; img.height = 48;
    const more = document.createElement("button");
    more.textContent = "more like this";
    more.onclick = () => { $("file-input").value = h.path; $("start").value = h.start.toFixed(2);
      $("end").value = h.end.toFixed(2); runSearch(); };
    for (const el of [img, player(h.audio_url, h.start, h.end), more]) {
      const td = document.createElement("td");
      td.appendChild(el);
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  $("results").hidden = false;
  setStatus(`${res.hits.length} results for ${res.query} in ${res.took_ms} ms (index version ${res.index_version})`);
}

async function runSearch() {
  const path = $("file-input").value.trim();
  if (!path) { setStatus("pick a file of the collection first", true); return; }
  let url = `/api/search?path=${enc(path)}&k=${enc($("k").value || 10)}`;
  if ($("start").value) url += `&start=${enc($("start").value)}`;
  if ($("end").value) url += `&end=${enc($("end").value)}`;
  setStatus("searching…");
  try { render(await api(url)); } catch (e) { setStatus(e.message, true); }
}
$("by-file").onsubmit = (ev) => { ev.preventDefault(); runSearch(); };

$("by-upload").onsubmit = async (ev) => {
  ev.preventDefault();
  const f = $("upload").files[0];
  if (!f) { setStatus("choose an audio file to upload", true); return; }
  setStatus(`uploading ${f.name}…`);
  try {
    render(await api(`/api/search/upload?filename=${enc(f.name)}&k=${enc($("k").value || 10)}`,
      { method: "POST", body: f, headers: { "Content-Type": f.type || "application/octet-stream" } }));
  } catch (e) { setStatus(e.message, true); }
};

// ----------------------------------------------------------------------------------------- clusters
async function loadClusters() {
  const box = $("clusters");
  try {
    const r = await api("/api/clusters");
    $("clusters-status").textContent = `${r.k} clusters (${r.method || "?"}); each with the sounds nearest its centre`;
    for (const c of r.clusters) {
      const div = document.createElement("div");
      div.className = "cluster";
      const h = document.createElement("h3");
      h.innerHTML = `<span class="swatch" style="background:${AudioembMap.colour(c.cluster)}"></span>`;
      h.appendChild(document.createTextNode(`${c.cluster}: ${c.name} (${c.size})`));
      div.appendChild(h);
      for (const e of c.exemplars) {
        const row = document.createElement("div");
        row.className = "exemplar";
        const label = document.createElement("span");
        label.textContent = e.path + (e.end ? ` (${e.start.toFixed(1)}–${e.end.toFixed(1)} s)` : "");
        row.appendChild(player(e.audio_url, e.start || 0, e.end || 0));
        row.appendChild(label);
        div.appendChild(row);
      }
      box.appendChild(div);
    }
  } catch (e) { $("clusters-status").textContent = e.message; $("clusters-status").className = "error"; }
}

// ---------------------------------------------------------------------------------------------- map
async function loadMap() {
  const data = await api("/api/map");
  const audio = $("map-player");
  window.audioembMapView = AudioembMap.draw($("map"), data, (i) => {
    const p = data.paths[data.path[i]], s = data.start[i], e = data.end[i];
    $("map-now").textContent = p + (e > 0 ? ` (${s.toFixed(1)}–${e.toFixed(1)} s)` : "");
    audio.src = `/api/audio?path=${enc(p)}` + (e > 0 ? `#t=${s},${e}` : "");
    audio.play().catch(() => {});
  });
}

loadInfo();
loadFiles("").catch((e) => setStatus(e.message, true));
