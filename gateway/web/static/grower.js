/* The grower's desk: installed as an app, it works offline (the service worker, /grower/sw.js); stock
   is saved in place on the variety list (without JavaScript the form posts and the list comes back);
   packing slips print from their button. */
(function () {
  "use strict";
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/grower/sw.js", { scope: "/grower/" }).catch(function () {});
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  Array.prototype.forEach.call(document.querySelectorAll("form[data-stock]"), function (form) {
    form.addEventListener("submit", function (e) {
      if (!window.fetch || !window.FormData) return;
      e.preventDefault();
      var status = form.querySelector("[data-stock-status]");
      var button = form.querySelector("button");
      button.disabled = true;
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                           headers: { Accept: "text/html" } })
        .then(function (r) {
          if (!r.ok || r.url.indexOf("/grower/products") < 0) throw new Error(String(r.status));
          return r.text();
        })
        .then(function (html) {
          /* The list as it is now: this variety's line (state, total stock) from it. */
          var doc = new DOMParser().parseFromString(html, "text/html");
          var item = form.closest("li[id^=p-]");
          var fresh = item && doc.getElementById(item.id);
          if (fresh) item.querySelector("a").innerHTML = fresh.querySelector("a").innerHTML;
          status.textContent = status.dataset.saved;
        })
        .catch(function () { status.textContent = status.dataset.failed; })
        .then(function () { button.disabled = false; });
    });
  });
})();
