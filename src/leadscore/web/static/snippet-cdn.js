// leadscore: served ahead of analytics.js for Segment's snippet (GET /analytics.js/v1/{key}/analytics.min.js).
// analytics.js takes its CDN (where it reads its settings) from a script URL only when that URL is https,
// else it falls back to cdn.segment.com: set it to where this file came from (a path prefix kept), unless
// the page set one.
(function () {
  var analytics = window.analytics;
  var script = document.currentScript;
  if (analytics && !analytics._cdn && script && script.src) {
    analytics._cdn = script.src.replace(/\/analytics\.js\/v1\/.*$/, "");
  }
})();
