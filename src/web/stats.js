// The statistics page: five views over the /api/v1 statistics endpoints,
// drawn with uPlot. Charts are redrawn on resize and on a theme change.
"use strict";
(function () {
  var a = window.asu;
  var charts = (window.asuCharts = {});
  var builders = {};
  var DAY = 86400;

  function width(el) { return Math.max(240, el.clientWidth); }
  function palette() {
    return ["--c1", "--c2", "--c3", "--c4", "--c5", "--c6", "--c7", "--c8"].map(a.css);
  }
  function axis(extra) {
    var o = {
      stroke: a.css("--muted"),
      grid: { stroke: a.css("--grid"), width: 1 },
      ticks: { stroke: a.css("--grid"), width: 1 },
    };
    for (var k in extra) o[k] = extra[k];
    return o;
  }
  function day(label) { return Date.parse(label.slice(0, 10) + "T00:00:00Z") / 1000; }
  function utc(ts) { return uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC"); }

  function place(id, opts, data) {
    var el = document.getElementById(id);
    if (charts[id]) charts[id].destroy();
    el.innerHTML = "";
    opts.width = width(el);
    charts[id] = new uPlot(opts, data, el);
  }

  function timeChart(id, xs, series, opts) {
    var colors = palette();
    var o = {
      height: 260,
      tzDate: utc,
      scales: { x: { time: true } },
      axes: [axis({}), axis({ size: 50 })],
      series: [{ label: "Day" }].concat(series.map(function (s, i) {
        return {
          label: s.label,
          stroke: colors[s.color != null ? s.color : i % colors.length],
          width: 2,
          points: { size: 4 },
          value: s.value,
        };
      })),
    };
    for (var k in opts || {}) o[k] = opts[k];
    place(id, o, [xs].concat(series.map(function (s) { return s.data; })));
  }

  builders["c-daily"] = function (d) {
    timeChart("c-daily", d.labels.map(day), d.datasets.map(function (s, i) {
      return { label: s.label, data: s.data, color: i };
    }));
  };

  builders["c-weekly"] = function (d) {
    var series = d.datasets.map(function (s, i) {
      return { label: s.label, data: s.data, color: (i + 3) % 8 };
    });
    if (!series.length) series = [{ label: "no requests", data: d.labels.map(function () { return 0; }), color: 3 }];
    timeChart("c-weekly", d.labels.map(day), series);
  };

  builders["c-diff"] = function (rows) {
    var xs = rows.map(function (r) { return day(r.date); });
    var share = rows.map(function (r) {
      return r.total ? Math.round((1000 * r.diff_packages_true) / r.total) / 10 : null;
    });
    timeChart("c-diff", xs, [{
      label: "diff_packages %", data: share, color: 4,
      value: function (u, v) { return v == null ? "–" : v + " %"; },
    }], {
      scales: { x: { time: true }, y: { range: [0, 100] } },
      axes: [axis({}), axis({ size: 50, values: function (u, vs) { return vs.map(function (v) { return v + "%"; }); } })],
    });
  };

  builders["c-packages"] = function (d) {
    var pk = d.packages.length ? d.packages : [{ name: "(none yet)", count: 0 }];
    var names = pk.map(function (p) {
      return p.name.length > 24 ? p.name.slice(0, 23) + "\u2026" : p.name;
    });
    var longest = Math.max.apply(null, names.map(function (n) { return n.length; }));
    var idx = pk.map(function (_, i) { return i; });
    var max = Math.max.apply(null, pk.map(function (p) { return p.count; }).concat([1]));
    var colors = palette();
    place("c-packages", {
      height: Math.max(160, 26 * pk.length + 50),
      legend: { show: false },
      cursor: { show: false },
      scales: {
        // Vertical category axis, most requested at the top.
        x: { time: false, ori: 1, dir: -1, range: [-0.5, pk.length - 0.5] },
        y: { ori: 0, range: [0, max * 1.08] },
      },
      axes: [
        axis({
          side: 3, size: Math.min(Math.max(60, 7 * longest + 16), 200),
          grid: { show: false }, ticks: { show: false },
          splits: function () { return idx; },
          values: function (u, splits) { return splits.map(function (i) { return names[i] || ""; }); },
        }),
        axis({ side: 2 }),
      ],
      series: [{}, {
        label: "builds",
        fill: colors[3],
        stroke: colors[3],
        paths: uPlot.paths.bars({ size: [0.7, 24] }),
        points: { show: false },
      }],
    }, [idx, pk.map(function (p) { return p.count; })]);
  };

  function showErrors(text) {
    var lines = text.split("\n");
    var start = lines.indexOf("-".repeat(60));
    var entries = start >= 0 ? lines.slice(start + 1) : [];
    var el = document.getElementById("errors");
    if (!entries.length) {
      el.innerHTML = '<p class="muted">No build errors recorded.</p>';
      return;
    }
    el.innerHTML = "<table><thead><tr><th>Time (UTC)</th><th>Build</th><th>Error</th></tr></thead><tbody>" +
      entries.map(function (line) {
        var when = line.slice(0, 19);
        var rest = line.slice(20);
        var sp = rest.indexOf(" ");
        var what = sp >= 0 ? rest.slice(0, sp) : rest;
        var err = sp >= 0 ? rest.slice(sp + 1) : "";
        return "<tr><td>" + a.esc(when) + "</td><td>" + a.esc(what.split(":").join(" ")) +
          '</td><td class="err">' + a.esc(err) + "</td></tr>";
      }).join("") + "</tbody></table>";
  }

  var sources = {
    "c-daily": "/api/v1/builds-per-day?days=30",
    "c-weekly": "/api/v1/builds-by-version?weeks=26",
    "c-diff": "/api/v1/diff-packages-trend?days=30",
    "c-packages": "/api/v1/top-packages?n=20",
  };
  var data = {};

  function drawAll() {
    Object.keys(data).forEach(function (id) { builders[id](data[id]); });
  }

  // One request at a time: the page reuses one kept-alive connection
  // instead of opening a burst of them.
  var steps = Object.keys(sources).map(function (id) {
    return function () {
      return a.get(sources[id]).then(function (d) {
        data[id] = d;
        builders[id](d);
      }, function (e) { a.fail(id, e); });
    };
  }).concat([
    function () {
      return a.get("/api/v1/build-errors?n=20").then(showErrors, function (e) { a.fail("errors", e); });
    },
    function () {
      return a.get("/api/v1/stats/summary").then(function (s) {
        a.text("t-requests", s.builds_24h);
        a.text("t-queue", s.queue_length);
      });
    },
    function () {
      return a.get("/api/v1/stats").then(function (s) { a.text("t-failed", s.failed_24h); });
    },
    function () {
      return a.get("/api/v1/diff-packages-stats?days=30").then(function (s) {
        a.text("t-diff", s.total_builds ? s.percentage_true + " %" : "\u2013");
      });
    },
  ]);
  // Each step's failure is shown in place; the page still says it is done.
  a.sequence(steps).then(function () {
    document.body.dataset.ready = String(Object.keys(charts).length);
  });

  var resizeTimer = null;
  window.addEventListener("resize", function () {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(function () {
      Object.keys(charts).forEach(function (id) {
        var u = charts[id];
        u.setSize({ width: width(document.getElementById(id)), height: u.height });
      });
    }, 150);
  });
  if (window.matchMedia) {
    var mq = window.matchMedia("(prefers-color-scheme: dark)");
    if (mq.addEventListener) mq.addEventListener("change", drawAll);
  }
})();
