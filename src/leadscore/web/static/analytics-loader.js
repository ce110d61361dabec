/* leadscore's tracking tag: appended to the vendored analytics.js (@segment/analytics-next) when
   /analytics.js is served. It loads the library pointed at the server this file came from, with the write
   key of its own <script> tag (data-write-key), records a page view, and leaves `window.analytics` for
   the site's own identify and track calls (queued until the library has loaded). */
(function () {
  "use strict";
  var script = document.currentScript;
  var writeKey = script && script.getAttribute("data-write-key");
  if (!writeKey || !window.AnalyticsNext) {
    if (window.console) window.console.error("leadscore: the <script> tag needs a data-write-key attribute");
    return;
  }
  // the server's URL: the script's own, less "/analytics.js" (leadscore may live under a path)
  var server = script.src.replace(/\/analytics\.js(?:[?#].*)?$/, "");
  var analytics = window.AnalyticsNext.AnalyticsBrowser.load({ writeKey: writeKey, cdnURL: server });
  window.analytics = analytics;
  analytics.page();
})();
