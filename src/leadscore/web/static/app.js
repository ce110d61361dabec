// leadscore dashboard charts: drawn with the vendored Chart.js from JSON the server put in the page
// (a <script type="application/json"> data block, which never executes). No inline scripts anywhere.
"use strict";

(function () {
  const INK = "#1b1f24", MUTED = "#57606a", ACCENT = "#0a5cc2", FIT = "#8a5300", ENG = "#24527a";

  function day(ms) {
    return new Date(ms).toISOString().slice(0, 10);
  }

  function short(text) {
    return text.length > 28 ? text.slice(0, 27) + "…" : text;
  }

  function data(canvas) {
    // a fragment swapped in by htmx carries its data on the canvas (htmx drops <script> elements)
    if (canvas.dataset.json) return JSON.parse(canvas.dataset.json);
    const el = document.getElementById(canvas.dataset.source);
    return el ? JSON.parse(el.textContent) : null;
  }

  // horizontal threshold lines and text labels for the annotated points: readable without colour
  const annotations = {
    id: "leadscoreAnnotations",
    afterDatasetsDraw(chart, _args, opts) {
      const { ctx, chartArea, scales } = chart;
      ctx.save();
      ctx.font = "12px system-ui, sans-serif";
      for (const line of opts.lines || []) {
        const y = scales.y.getPixelForValue(line.value);
        ctx.strokeStyle = MUTED;
        ctx.setLineDash([2, 4]);
        ctx.beginPath();
        ctx.moveTo(chartArea.left, y);
        ctx.lineTo(chartArea.right, y);
        ctx.stroke();
        ctx.fillStyle = MUTED;
        ctx.fillText(line.label, chartArea.left + 4, y - 4);
      }
      // vertical marks (a threshold between two bars): x in the x scale's units, may fall between categories
      for (const mark of opts.marks || []) {
        const x = scales.x.getPixelForValue(mark.x);
        ctx.strokeStyle = INK;
        ctx.setLineDash([6, 3]);
        ctx.beginPath();
        ctx.moveTo(x, chartArea.top);
        ctx.lineTo(x, chartArea.bottom);
        ctx.stroke();
        const width = ctx.measureText(mark.label).width;
        const left = Math.min(x + 4, chartArea.right - width);
        ctx.fillStyle = "rgba(255,255,255,0.85)";
        ctx.fillRect(left - 2, chartArea.top + 2, width + 4, 15);
        ctx.fillStyle = INK;
        ctx.fillText(mark.label, left, chartArea.top + 13);
      }
      ctx.setLineDash([]);
      // labels are placed largest move first, each on the lowest of three rows above its point where it
      // overlaps no label already placed; a label with no free row is left out (the table lists them all)
      const placed = [];
      for (const note of opts.notes || []) {
        const x = scales.x.getPixelForValue(note.x), y = scales.y.getPixelForValue(note.y);
        const width = ctx.measureText(note.text).width;
        const left = Math.min(Math.max(x - width / 2, chartArea.left), chartArea.right - width);
        for (const above of [16, 34, 52]) {
          const box = { left: left - 2, right: left + width + 4, top: y - above - 11, bottom: y - above + 4 };
          if (box.top < chartArea.top - 4) continue;
          const clash = placed.some((b) => b.left < box.right && box.left < b.right && b.top < box.bottom && box.top < b.bottom);
          if (clash) continue;
          placed.push(box);
          ctx.fillStyle = "rgba(255,255,255,0.85)";
          ctx.fillRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
          ctx.fillStyle = INK;
          ctx.fillText(note.text, left, y - above);
          break;
        }
      }
      chart.canvas.dataset.labels = JSON.stringify(placed); // where the labels went (the browser test reads it)
      ctx.restore();
    },
  };

  function journey(canvas) {
    const d = data(canvas);
    if (!d || !d.points.length) return;
    const pts = (key) => d.points.map((p) => ({ x: p.t, y: p[key] }));
    const moved = d.points.filter((p) => p.moved);
    // the largest moves first: they get a label before any smaller one that would overlap them
    const biggest = moved.slice().sort((a, b) => Math.abs(b.delta) - Math.abs(a.delta)).slice(0, 8);
    const notes = biggest.map((p) => ({
      x: p.t,
      y: p.score,
      text: (p.delta > 0 ? "+" : "−") + Math.abs(p.delta).toFixed(1) + " " + short(p.events[0] || ""),
    }));
    const lines = [];
    if (d.bands.hot !== undefined) lines.push({ value: d.bands.hot, label: "hot ≥ " + d.bands.hot });
    if (d.bands.warm !== undefined) lines.push({ value: d.bands.warm, label: "warm ≥ " + d.bands.warm });
    new window.Chart(canvas, {
      type: "line",
      data: {
        datasets: [
          { label: "Score", data: pts("score"), borderColor: ACCENT, backgroundColor: ACCENT, borderWidth: 3,
            pointStyle: d.points.map((p) => (p.moved ? "star" : "circle")),
            pointRadius: d.points.map((p) => (p.moved ? 7 : 2)) },
          { label: "Fit", data: pts("fit"), borderColor: FIT, backgroundColor: FIT, borderDash: [8, 4],
            pointStyle: "triangle", pointRadius: 2, borderWidth: 1.5 },
          { label: "Engagement", data: pts("engagement"), borderColor: ENG, backgroundColor: ENG,
            borderDash: [2, 3], pointStyle: "rect", pointRadius: 2, borderWidth: 1.5 },
        ],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        parsing: false,
        scales: {
          x: { type: "linear", ticks: { callback: (v) => day(v), maxTicksLimit: 7, maxRotation: 0, autoSkipPadding: 16 } },
          y: { min: 0, max: 100, title: { display: true, text: "score (0–100)" } },
        },
        plugins: {
          legend: { labels: { usePointStyle: true } },
          tooltip: {
            callbacks: {
              title: (items) => day(items[0].parsed.x),
              afterBody: (items) => {
                const p = d.points[items[0].dataIndex];
                return p && p.events.length ? p.events : [];
              },
            },
          },
          leadscoreAnnotations: { lines, notes },
        },
      },
      plugins: [annotations],
    });
  }

  // generic charts: {"type": "line"|"bar", "x": [...], "series": [{"label", "values"}], "y": {...}, "stacked",
  // "marks": [{"x", "label"}] (vertical lines)}
  const STYLES = [
    { borderColor: ACCENT, backgroundColor: ACCENT, pointStyle: "circle", borderDash: [] },
    { borderColor: FIT, backgroundColor: FIT, pointStyle: "triangle", borderDash: [8, 4] },
    { borderColor: ENG, backgroundColor: ENG, pointStyle: "rect", borderDash: [2, 3] },
    { borderColor: INK, backgroundColor: INK, pointStyle: "crossRot", borderDash: [12, 3, 2, 3] },
    { borderColor: MUTED, backgroundColor: MUTED, pointStyle: "rectRot", borderDash: [4, 4] },
  ];

  function series(canvas) {
    const d = data(canvas);
    if (!d) return;
    const bar = d.type === "bar";
    new window.Chart(canvas, {
      type: d.type || "line",
      data: {
        labels: d.x,
        datasets: d.series.map((s, i) => {
          const st = STYLES[i % STYLES.length];
          return Object.assign({ label: s.label, data: s.values, borderWidth: bar ? 1 : 2.5, pointRadius: 4 }, st,
            bar ? { backgroundColor: st.borderColor + (i % 2 ? "66" : "cc"), borderDash: [] } : {});
        }),
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: !!d.stacked, title: { display: !!d.xTitle, text: d.xTitle || "" } },
          y: Object.assign({ stacked: !!d.stacked, beginAtZero: true,
            title: { display: !!d.yTitle, text: d.yTitle || "" } }, d.y || {}),
        },
        plugins: { legend: { labels: { usePointStyle: true } }, leadscoreAnnotations: { marks: d.marks || [] } },
      },
      plugins: [annotations],
    });
  }

  function draw(root) {
    if (!window.Chart) return;
    for (const canvas of root.querySelectorAll("canvas[data-chart]")) {
      if (canvas.dataset.drawn) continue;
      canvas.dataset.drawn = "pending";
      if (canvas.dataset.chart === "journey") journey(canvas);
      else series(canvas);
      // "1" only when a chart was drawn (a test waits for it), "empty" when there was nothing to draw
      canvas.dataset.drawn = window.Chart.getChart(canvas) ? "1" : "empty";
    }
  }

  document.addEventListener("DOMContentLoaded", () => draw(document));
  document.addEventListener("htmx:afterSettle", (e) => draw(e.target));
})();
