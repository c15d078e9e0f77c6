// Shared by the pages: JSON from our own origin, theme colours, HTML escaping.
"use strict";
window.asu = (function () {
  function get(path) {
    return fetch(path, { headers: { Accept: "application/json" } }).then(function (r) {
      if (!r.ok) throw new Error(path + ": HTTP " + r.status);
      var type = r.headers.get("Content-Type") || "";
      return type.indexOf("json") >= 0 ? r.json() : r.text();
    });
  }
  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }
  function esc(s) {
    return String(s).replace(/[&<>"']/g, function (c) {
      return { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c];
    });
  }
  function text(id, value) {
    var el = document.getElementById(id);
    if (el) el.textContent = value;
  }
  function fail(id, err) {
    var el = document.getElementById(id);
    if (el) el.innerHTML = '<p class="error">' + esc(err.message || err) + "</p>";
  }
  // Run promise-returning steps one after another; a failed step does not
  // stop the rest.
  function sequence(steps) {
    return steps.reduce(function (done, step) {
      return done.then(function () {
        return step().catch(function (e) { console.warn(e); });
      });
    }, Promise.resolve());
  }
  return { get: get, css: css, esc: esc, text: text, fail: fail, sequence: sequence };
})();
