/* The grower's desk: installed as an app, it works offline (the service worker, /grower/sw.js); stock
   is saved in place on the variety list (without JavaScript the form posts and the list comes back);
   packing slips print from their button; a switch on the desk turns Web Push on or off
   for this device. */
(function () {
  "use strict";
  if ("serviceWorker" in navigator && window.isSecureContext) {
    navigator.serviceWorker.register("/grower/sw.js", { scope: "/grower/" }).catch(function () {});
  }

  /* Web Push, per device: the switch subscribes this browser (the key from notify) or unsubscribes it. */
  var push = document.querySelector("form[data-push]");
  if (push && "serviceWorker" in navigator && "PushManager" in window && window.isSecureContext) {
    var box = push.querySelector("[data-push-switch]"), said = push.querySelector("[data-push-status]");
    var send = function (action, fields) {
      var body = new FormData();
      body.append("csrf", push.elements.csrf.value);
      Object.keys(fields).forEach(function (k) { body.append(k, fields[k]); });
      return fetch(action, { method: "POST", body: body, credentials: "same-origin" }).then(function (r) {
        if (!r.ok) throw new Error(String(r.status));
      });
    };
    var bytes = function (b64) {
      var raw = atob(b64.replace(/-/g, "+").replace(/_/g, "/") + "==".slice(0, (4 - b64.length % 4) % 4));
      return Uint8Array.from(raw, function (c) { return c.charCodeAt(0); });
    };
    var on = function (reg) {
      return Notification.requestPermission().then(function (answer) {
        if (answer !== "granted") throw new Error("denied");
        return fetch("/grower/push/key", { credentials: "same-origin" });
      }).then(function (r) { if (!r.ok) throw new Error(String(r.status)); return r.json(); })
        .then(function (key) {
          return reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key.public_key) });
        }).then(function (sub) {
          var json = sub.toJSON();
          return send(push.action, { endpoint: json.endpoint, p256dh: json.keys.p256dh, auth: json.keys.auth,
                                     device: (navigator.userAgentData && navigator.userAgentData.platform) ||
                                             navigator.platform || "" });
        });
    };
    var off = function (reg) {
      return reg.pushManager.getSubscription().then(function (sub) {
        if (!sub) return;
        return send(push.action + "/off", { endpoint: sub.endpoint }).then(function () { return sub.unsubscribe(); });
      });
    };
    push.hidden = false;
    navigator.serviceWorker.ready.then(function (reg) { return reg.pushManager.getSubscription(); })
      .then(function (sub) { box.checked = !!sub && Notification.permission === "granted"; });
    box.addEventListener("change", function () {
      var wanted = box.checked;
      box.disabled = true;
      navigator.serviceWorker.ready.then(function (reg) { return wanted ? on(reg) : off(reg); })
        .then(function () { said.textContent = wanted ? said.dataset.on : said.dataset.off; })
        .catch(function (e) {
          box.checked = !wanted;
          said.textContent = e && e.message === "denied" ? said.dataset.denied : said.dataset.failed;
        })
        .then(function () { box.disabled = false; });
    });
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
