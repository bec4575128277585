/* The grower's desk: installed as an app, it works offline (the service worker, /grower/sw.js). */
(function () {
  "use strict";
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/grower/sw.js", { scope: "/grower/" }).catch(function () {});
  }
})();
