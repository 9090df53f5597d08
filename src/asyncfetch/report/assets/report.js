/* Draws the report's plots with uPlot from the JSON in #report-data. No network. */
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("report-data").textContent);
  var plots = [];

  function colour(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function axes(xOptions) {
    var fg = colour("--muted"), grid = colour("--line");
    var y = { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } };
    var x = Object.assign({ stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } }, xOptions);
    return [x, y];
  }

  function width(el) {
    return Math.max(el.clientWidth, 200);
  }

  function empty(el, text) {
    el.classList.add("empty");
    el.textContent = text;
  }

  function percentileLines(u) {
    var ctx = u.ctx, marks = data.latency.percentiles, top = u.bbox.top, h = u.bbox.height;
    ctx.save();
    ctx.strokeStyle = colour("--accent");
    ctx.fillStyle = colour("--accent");
    ctx.setLineDash([4, 4]);
    ctx.font = Math.round(11 * devicePixelRatio) + "px system-ui, sans-serif";
    ["p50", "p90", "p99", "p99.9"].forEach(function (name, i) {
      var value = marks[name];
      if (!(value > 0)) return;
      var x = Math.round(u.valToPos(value, "x", true));
      ctx.beginPath();
      ctx.moveTo(x, top);
      ctx.lineTo(x, top + h);
      ctx.stroke();
      ctx.fillText(name, x + 3 * devicePixelRatio, top + (12 + 13 * i) * devicePixelRatio);
    });
    ctx.restore();
  }

  function msLabel(v) {
    // uPlot leaves the minor ticks of a log axis unlabelled (null).
    if (v == null) return "";
    return v >= 1000 ? v / 1000 + " s" : v + " ms";
  }

  function latencyPlot(el) {
    var lat = data.latency;
    if (!lat.edges.length) return empty(el, "no timed requests");
    var opts = {
      width: width(el), height: 260,
      scales: { x: { time: false, distr: 3 }, y: { range: function (u, min, max) { return [0, max * 1.1 || 1]; } } },
      axes: axes({ label: "latency (ms, log scale)", values: function (u, vals) { return vals.map(msLabel); } }),
      series: [
        { label: "latency ≤", value: function (u, v) { return v == null ? "-" : v.toFixed(1) + " ms"; } },
        { label: "requests", stroke: colour("--accent"), fill: colour("--accent") + "99", paths: uPlot.paths.bars({ size: [0.9, 40], align: -1 }), points: { show: false } },
      ],
      hooks: { draw: [percentileLines] },
    };
    return new uPlot(opts, [lat.edges, lat.counts], el);
  }

  function timeAxis() {
    var t = data.timeline, xs = [];
    for (var i = 0; i < t.counts["failed"].length; i++) xs.push(t.start + (i + 1) * t.width);
    return xs;
  }

  // Seconds each bucket covers: the last one only up to the run's end (at least a
  // quarter of a bucket), so a run that ends early in a bucket does not seem to slow down.
  function spans() {
    var t = data.timeline, n = t.counts["failed"].length, out = [];
    for (var i = 0; i < n; i++) out.push(t.width);
    if (n && t.end != null) {
      var covered = t.end - (t.start + (n - 1) * t.width);
      out[n - 1] = Math.min(t.width, Math.max(covered, t.width / 4));
    }
    return out;
  }

  function perSecond(counts) {
    var seconds = spans();
    return counts.map(function (n, i) { return n / seconds[i]; });
  }

  function sum(names, i) {
    var total = 0, c = data.timeline.counts;
    names.forEach(function (name) { total += c[name][i]; });
    return total;
  }

  function timePlot(el, series, values) {
    if (!values[0].length) return empty(el, "no timed requests");
    var opts = {
      width: width(el), height: 240,
      scales: { x: { time: true } },
      // Records' times are UTC, and so is the page, wherever it is opened.
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); },
      axes: axes({ label: "time (UTC)" }),
      series: [{}].concat(series),
    };
    return new uPlot(opts, values, el);
  }

  function throughputPlot(el) {
    var xs = timeAxis(), all = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"];
    var seconds = spans();
    var requests = xs.map(function (_, i) { return sum(all, i) / seconds[i]; });
    return timePlot(el, [
      { label: "requests/s", stroke: colour("--accent"), width: 2 },
      { label: "failed/s", stroke: colour("--fail"), width: 2 },
    ], [xs, requests, perSecond(data.timeline.counts["failed"])]);
  }

  function statusPlot(el) {
    var xs = timeAxis(), names = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"], series = [], values = [xs];
    names.forEach(function (name) {
      var counts = data.timeline.counts[name];
      if (!counts.some(function (n) { return n > 0; })) return;
      series.push({ label: name + "/s", stroke: colour("--c" + name), width: 2 });
      values.push(perSecond(counts));
    });
    return timePlot(el, series, values);
  }

  var builders = { "plot-latency": latencyPlot, "plot-throughput": throughputPlot, "plot-status": statusPlot };

  function draw() {
    plots.forEach(function (p) { p.destroy(); });
    plots = [];
    Object.keys(builders).forEach(function (id) {
      var el = document.getElementById(id);
      el.classList.remove("empty");
      el.textContent = "";
      var plot = builders[id](el);
      if (plot) plots.push(plot);
    });
  }

  var resizing = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizing);
    resizing = setTimeout(function () {
      plots.forEach(function (p) { p.setSize({ width: width(p.root.parentNode), height: p.height }); });
    }, 100);
  });
  var scheme = window.matchMedia("(prefers-color-scheme: dark)");
  if (scheme.addEventListener) scheme.addEventListener("change", draw);
  draw();
})();
