// The overview page: server, branches, settings clients care about, queue.
"use strict";
(function () {
  var a = window.asu;

  function yes(b) { return b ? "yes" : "no"; }

  function showOverview(o) {
    var s = o.server || {};
    a.text("server-version", s.version || "?");
    a.text("upstream", o.upstream_url || "");
    a.text("allow-defaults", yes(s.allow_defaults));
    a.text("defaults-length", s.max_defaults_length != null ? s.max_defaults_length + " bytes" : "?");
    a.text("rootfs", s.max_custom_rootfs_size_mb != null ? s.max_custom_rootfs_size_mb + " MB" : "?");
    var repos = s.repository_allow_list || [];
    document.getElementById("repos").innerHTML = repos.length
      ? repos.map(function (r) { return "<code>" + a.esc(r) + "</code>"; }).join("<br>")
      : '<span class="muted">none (only the official feeds)</span>';
    var branches = Object.keys(o.branches || {}).map(function (k) { return o.branches[k]; });
    var rows = branches.map(function (b) {
      var versions = (b.versions || []).map(function (v) {
        return '<span class="chip">' + a.esc(v) + "</span>";
      }).join(" ");
      return "<tr><td>" + a.esc(b.name) + "</td><td>" + yes(b.enabled) + "</td><td>" +
        (versions || '<span class="muted">none</span>') + "</td><td>" +
        Object.keys(b.targets || {}).length + "</td></tr>";
    });
    document.getElementById("branches").innerHTML =
      "<table><thead><tr><th>Branch</th><th>Enabled</th><th>Versions</th><th>Targets</th></tr></thead><tbody>" +
      rows.join("") + "</tbody></table>";
    a.text("latest", (o.latest || []).join(", ") || "none");
  }

  function showQueue(st) {
    a.text("queue-length", st.queue_length);
    a.text("running", st.running);
    a.text("workers", st.workers_busy + " / " + st.workers);
    a.text("completed-24h", st.completed_24h);
    a.text("failed-24h", st.failed_24h);
  }

  function refreshQueue() {
    return a.get("/api/v1/stats").then(showQueue, function (e) { a.fail("queue-error", e); });
  }

  a.sequence([
    function () {
      return a.get("/json/v1/overview.json").then(showOverview, function (e) { a.fail("branches", e); });
    },
    refreshQueue,
  ]).then(function () { document.body.dataset.ready = "1"; });
  setInterval(refreshQueue, 10000);
})();
