// The 2-D map of a collection, shared by `audioemb serve` and the map.html that `audioemb cluster` writes.
// AudioembMap.draw(canvas, data, onPick): data is the columnar map (x, y, cluster, path, start, end, paths,
// clusters); a click calls onPick(i) with the nearest point's index.
(function (global) {
  "use strict";
  const PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2",
    "#c7c7c7", "#dbdb8d", "#9edae5"];
  function colour(c) { return c < 0 ? "#3b6ea8" : PALETTE[c % PALETTE.length]; }

  function draw(canvas, data, onPick) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, pad = 24, n = data.x.length;
    let x0 = Infinity, x1 = -Infinity, y0 = Infinity, y1 = -Infinity;
    for (let i = 0; i < n; i++) {
      x0 = Math.min(x0, data.x[i]); x1 = Math.max(x1, data.x[i]);
      y0 = Math.min(y0, data.y[i]); y1 = Math.max(y1, data.y[i]);
    }
    const sx = (W - 2 * pad) / ((x1 - x0) || 1), sy = (H - 2 * pad) / ((y1 - y0) || 1);
    const px = new Float32Array(n), py = new Float32Array(n);
    for (let i = 0; i < n; i++) { px[i] = pad + (data.x[i] - x0) * sx; py[i] = H - pad - (data.y[i] - y0) * sy; }
    const r = Math.max(2, Math.min(6, 600 / Math.sqrt(n + 1)));
    let selected = -1;

    function paint() {
      ctx.clearRect(0, 0, W, H);
      ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, W, H);
      ctx.globalAlpha = 0.75;
      for (let i = 0; i < n; i++) {
        ctx.fillStyle = colour(data.cluster[i]);
        ctx.beginPath(); ctx.arc(px[i], py[i], r, 0, 2 * Math.PI); ctx.fill();
      }
      ctx.globalAlpha = 1;
      const cx = {}, cy = {}, cn = {};
      for (let i = 0; i < n; i++) {
        const c = data.cluster[i]; if (c < 0) continue;
        cx[c] = (cx[c] || 0) + px[i]; cy[c] = (cy[c] || 0) + py[i]; cn[c] = (cn[c] || 0) + 1;
      }
      ctx.font = "12px sans-serif"; ctx.textAlign = "center";
      const placed = [];
      for (const cl of data.clusters || []) {
        if (!cn[cl.id]) continue;
        const label = `${cl.name} (${cl.size})`, X = cx[cl.id] / cn[cl.id];
        let Y = cy[cl.id] / cn[cl.id];
        while (placed.some(([a, b]) => Math.abs(a - X) < 120 && Math.abs(b - Y) < 14)) Y += 15;  // off other labels
        placed.push([X, Y]);
        ctx.lineWidth = 3; ctx.strokeStyle = "rgba(255,255,255,0.9)"; ctx.strokeText(label, X, Y);
        ctx.fillStyle = "#111"; ctx.fillText(label, X, Y);
      }
      if (selected >= 0) {
        ctx.strokeStyle = "#000"; ctx.lineWidth = 2;
        ctx.beginPath(); ctx.arc(px[selected], py[selected], r + 4, 0, 2 * Math.PI); ctx.stroke();
      }
    }
    paint();
    canvas.onclick = function (ev) {
      const box = canvas.getBoundingClientRect();
      const mx = (ev.clientX - box.left) * W / box.width, my = (ev.clientY - box.top) * H / box.height;
      let best = -1, bd = Infinity;
      for (let i = 0; i < n; i++) {
        const d = (px[i] - mx) ** 2 + (py[i] - my) ** 2;
        if (d < bd) { bd = d; best = i; }
      }
      if (best >= 0 && bd < 400) { selected = best; paint(); if (onPick) onPick(best); }
    };
    return { select: function (i) { selected = i; paint(); }, point: function (i) { return [px[i], py[i]]; } };
  }
  global.AudioembMap = { draw: draw, colour: colour };
})(typeof window !== "undefined" ? window : this);
