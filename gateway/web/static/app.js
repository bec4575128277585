/* Chợ Vườn: small enhancements. Every page works without this file. */
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var locale = document.documentElement.lang === "en" ? "en-US" : "vi-VN";
  function vnd(n) { return new Intl.NumberFormat(locale).format(n) + " ₫"; }
  /* An amount never breaks before its "₫". */
  function amount(text) { var s = document.createElement("span"); s.className = "amt"; s.textContent = text; return s; }

  /* Share: the phone's own share sheet (Facebook, Zalo…), else copy the link. */
  $$("[data-share]").forEach(function (btn) {
    btn.hidden = false;
    btn.addEventListener("click", function () {
      var url = btn.dataset.url, status = $("[data-share-status]", btn.parentNode);
      if (navigator.share) {
        navigator.share({ title: btn.dataset.title, url: url }).catch(function () {});
      } else if (navigator.clipboard) {
        navigator.clipboard.writeText(url).then(function () { status.textContent = btn.dataset.copied; });
      } else {
        var input = $("input.link", btn.parentNode); input.select(); document.execCommand("copy");
        status.textContent = btn.dataset.copied;
      }
    });
  });

  /* Copy a value (an account number, a transfer message, a link) with one tap. */
  function copied(btn) {
    var status = $("[data-copy-status]", btn.closest("section") || document);
    if (status) status.textContent = btn.dataset.done;
  }
  $$("[data-copy]").forEach(function (btn) {
    if (!navigator.clipboard) return;  /* the values stay on the page to select by hand */
    btn.hidden = false;
    btn.addEventListener("click", function () {
      navigator.clipboard.writeText(btn.dataset.copy).then(function () { copied(btn); });
    });
  });

  /* The VietQR as a PNG in the phone's downloads (a bank app opens a picture, not an SVG). */
  $$("[data-save-qr]").forEach(function (link) {
    link.addEventListener("click", function (e) {
      if (!window.fetch || !HTMLCanvasElement.prototype.toBlob) return;  /* the SVG link itself */
      e.preventDefault();
      var img = new Image();
      img.onload = function () {
        var canvas = document.createElement("canvas"), size = 720;
        canvas.width = size; canvas.height = size;
        var ctx = canvas.getContext("2d");
        ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
        ctx.drawImage(img, 0, 0, size, size);
        canvas.toBlob(function (blob) {
          var a = document.createElement("a");
          a.href = URL.createObjectURL(blob); a.download = link.dataset.name;
          document.body.appendChild(a); a.click(); a.remove();
          setTimeout(function () { URL.revokeObjectURL(a.href); }, 10000);
        }, "image/png");
      };
      img.src = link.href;
    });
  });

  /* Province → its wards, from /api/v1/provinces/{code}/wards. */
  $$("select[data-province]").forEach(function (sel) {
    var ward = document.getElementById(sel.dataset.province);
    sel.addEventListener("change", function () {
      var empty = ward.dataset.empty;
      ward.innerHTML = "";
      ward.add(new Option(empty, ""));
      if (!sel.value) return;
      fetch("/api/v1/provinces/" + encodeURIComponent(sel.value) + "/wards")
        .then(function (r) { return r.ok ? r.json() : []; })
        .then(function (wards) {
          wards.sort(function (a, b) { return collate(bare(a.name), bare(b.name)); });
          wards.forEach(function (w) { ward.add(new Option(w.name.replace(/\s+/g, " ").trim(), w.code)); });
          ward.dispatchEvent(new Event("wards"));
        });
    });
  });

  /* Wards in Vietnamese order of their names, and a box to find one among a hundred. */
  /* The same order as the server's (gateway/web/places.py): letters of the Vietnamese alphabet, tones after. */
  var ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz";
  function sortKey(name) {
    var letters = name.toLowerCase().normalize("NFD").replace(/[\u0300\u0301\u0303\u0309\u0323]/g, "").normalize("NFC");
    return Array.prototype.map.call(letters, function (c) {
      var i = ALPHABET.indexOf(c); return i >= 0 ? i : 100 + c.charCodeAt(0);
    });
  }
  function collate(a, b) {
    var x = sortKey(a), y = sortKey(b);
    for (var i = 0; i < Math.min(x.length, y.length); i++) if (x[i] !== y[i]) return x[i] - y[i];
    return x.length - y.length || (a < b ? -1 : a > b ? 1 : 0);
  }
  function bare(name) { return name.replace(/\s+/g, " ").trim().replace(/^(Phường|Xã|Đặc khu) /, ""); }
  function plain(text) {
    return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").replace(/đ/g, "d").replace(/Đ/g, "D").toLowerCase();
  }
  $$("select[data-filter-label]").forEach(function (ward) {
    var box = document.createElement("input"), label = document.createElement("label");
    box.type = "search"; box.id = ward.id + "-find"; box.autocomplete = "off";
    box.placeholder = ward.dataset.filterHint;
    label.htmlFor = box.id; label.className = "small"; label.textContent = ward.dataset.filterLabel;
    ward.parentNode.insertBefore(label, ward); ward.parentNode.insertBefore(box, ward);
    var all = [];
    var keep = function () { all = $$("option", ward).slice(1).map(function (o) { return [o.text, o.value]; }); };
    keep();
    ward.addEventListener("wards", function () { box.value = ""; keep(); });
    box.addEventListener("input", function () {
      var want = plain(box.value.trim()), chosen = ward.value;
      while (ward.options.length > 1) ward.remove(1);
      all.forEach(function (w) {
        if (!want || plain(w[0]).indexOf(want) >= 0) ward.add(new Option(w[0], w[1], false, w[1] === chosen));
      });
      if (ward.options.length === 2) ward.selectedIndex = 1;  /* one left: chosen */
    });
  });

  /* The order form: the unit price (retail or wholesale) as the quantity changes, the fee, the total. */
  var order = $("form[data-order]");
  if (order) {
    var delivery = JSON.parse(order.dataset.delivery || "{}");
    var summary = $("[data-summary]", order);
    var update = function () {
      var subtotal = 0;
      $$("[data-variant]", order).forEach(function (box) {
        var input = $("input", box), typed = input.value.trim(), shown = $("[data-line]", box);
        var notWhole = (typed && !/^\d+$/.test(typed)) || (input.validity && input.validity.badInput);
        input.setCustomValidity(notWhole ? order.dataset.whole : "");  /* the browser's bubble, in the page's language */
        shown.classList.toggle("err", !!notWhole);
        if (notWhole) { shown.textContent = order.dataset.whole; return; }  /* "1.5" is not 1 */
        var q = parseInt(typed, 10) || 0;
        var unit = +box.dataset.retail, kind = order.dataset.retailWord;
        JSON.parse(box.dataset.tiers).forEach(function (t) {
          if (q >= t.min_quantity) { unit = t.unit_price; kind = order.dataset.wholesaleWord; }
        });
        shown.textContent = "";
        if (q > 0) [q + " × ", amount(vnd(unit)), " (" + kind + ") = ", amount(vnd(q * unit))].forEach(function (part) {
          shown.append(part);
        });
        subtotal += q * unit;
      });
      var pickup = $("#dm-pickup", order), province = $("select[name='address.province_code']", order).value;
      var fee = 0;
      if (!(pickup && pickup.checked)) {
        var byProvince = delivery.fee_by_province || {};
        fee = province in byProvince ? byProvince[province] : (delivery.flat_fee || 0);
        if (delivery.free_above != null && subtotal >= delivery.free_above) fee = 0;
      }
      summary.hidden = subtotal === 0;
      $("[data-subtotal]", summary).textContent = vnd(subtotal);
      $("[data-fee]", summary).textContent = vnd(fee);
      $("[data-total]", summary).textContent = vnd(subtotal + fee);
      /* Below the shop's minimum (goods only): said before the buyer submits. */
      var below = $("[data-below-min]", summary), min = +order.dataset.minOrder || 0;
      if (below) {
        below.hidden = !(subtotal > 0 && subtotal < min);
        below.textContent = below.dataset.text.replace("{min}", vnd(min)).replace("{more}", vnd(min - subtotal));
      }
    };
    order.addEventListener("input", update);
    order.addEventListener("change", update);
    update();
  }

  /* Collecting at the nursery: no address asked (the server does not ask for one either). */
  $$("form").forEach(function (form) {
    var pickupChoice = $("#dm-pickup", form), shipOnly = $("[data-ship-only]", form);
    if (!pickupChoice || !shipOnly) return;
    var ship = function () {
      var needed = !pickupChoice.checked;
      shipOnly.hidden = !needed;
      $$("select, input[name='address.street']", shipOnly).forEach(function (el) { el.required = needed; });
    };
    $$("input[name=delivery_method]", form).forEach(function (r) { r.addEventListener("change", ship); });
    ship();
  });

  /* The cart: each line's price (retail or wholesale), each shop's goods and fee, the total, as
     quantities change (the server re-prices on "Update the cart" and on ordering). */
  var cart = $("form[data-cart]");
  if (cart) {
    var reprice = function () {
      var total = 0;
      $$("[data-cart-shop]", cart).forEach(function (shopBox) {
        var delivery = JSON.parse(shopBox.dataset.delivery || "{}"), subtotal = 0;
        $$("[data-cart-line]", shopBox).forEach(function (line) {
          var input = $("input", line), typed = input.value.trim(), shown = $("[data-line]", line);
          var notWhole = (typed && !/^\d+$/.test(typed)) || (input.validity && input.validity.badInput);
          input.setCustomValidity(notWhole ? cart.dataset.whole : "");
          shown.classList.toggle("err", !!notWhole);
          if (notWhole) { shown.textContent = cart.dataset.whole; return; }
          var q = parseInt(typed, 10) || 0, unit = +line.dataset.retail, kind = cart.dataset.retailWord;
          JSON.parse(line.dataset.tiers).forEach(function (t) {
            if (q >= t.min_quantity) { unit = t.unit_price; kind = cart.dataset.wholesaleWord; }
          });
          shown.textContent = "";
          [q + " × ", amount(vnd(unit)), " (" + kind + ") = ", amount(vnd(q * unit))].forEach(function (p) { shown.append(p); });
          subtotal += q * unit;
        });
        var fee = subtotal > 0 ? (delivery.flat_fee || 0) : 0;
        if (delivery.free_above != null && subtotal >= delivery.free_above) fee = 0;
        $("[data-subtotal]", shopBox).textContent = vnd(subtotal);
        $("[data-fee]", shopBox).textContent = vnd(fee);
        total += subtotal + fee;
      });
      $("[data-cart-total]", cart).textContent = vnd(total);
    };
    cart.addEventListener("input", reprice);
  }

  /* One submit per tap: the server's Idempotency-Key makes a second one harmless anyway. */
  $$("form").forEach(function (form) {
    form.addEventListener("submit", function () {
      var btn = $("button[data-once]", form);
      if (btn) setTimeout(function () { btn.disabled = true; }, 0);
    });
  });

  /* Photos from the camera, shrunk on the phone (≤ 1600 px JPEG) before they are sent. */
  var MAX = 1600;
  function shrink(file) {
    if (!/^image\//.test(file.type) || !window.createImageBitmap) return Promise.resolve(file);
    return createImageBitmap(file, { imageOrientation: "from-image" }).then(function (bmp) {
      var scale = Math.min(1, MAX / Math.max(bmp.width, bmp.height));
      if (scale === 1 && file.type === "image/jpeg" && file.size < 600000) return file;
      var canvas = document.createElement("canvas");
      canvas.width = Math.round(bmp.width * scale); canvas.height = Math.round(bmp.height * scale);
      canvas.getContext("2d").drawImage(bmp, 0, 0, canvas.width, canvas.height);
      return new Promise(function (done) {
        canvas.toBlob(function (blob) {
          if (!blob || blob.size >= file.size) return done(file);
          done(new File([blob], file.name.replace(/\.\w+$/, "") + ".jpg", { type: "image/jpeg" }));
        }, "image/jpeg", 0.85);
      });
    }).catch(function () { return file; });
  }
  $$("input[type=file][data-shrink]").forEach(function (input) {
    var box = input.closest(".field"), status = $("[data-shrink-status]", box), previews = $("[data-previews]", box);
    var form = input.form, busy = null;
    input.addEventListener("change", function () {
      var files = Array.prototype.slice.call(input.files);
      if (!files.length || input.dataset.done === "1") { input.dataset.done = ""; return; }
      status.textContent = input.dataset.shrinking;
      busy = Promise.all(files.map(shrink)).then(function (small) {
        if (window.DataTransfer) {
          var dt = new DataTransfer();
          small.forEach(function (f) { dt.items.add(f); });
          input.dataset.done = "1";
          input.files = dt.files;
        }
        previews.innerHTML = "";
        var total = 0;
        small.forEach(function (f) {
          total += f.size;
          var img = document.createElement("img");
          img.alt = ""; img.width = 96; img.height = 96; img.src = URL.createObjectURL(f);
          previews.appendChild(img);
        });
        status.textContent = input.dataset.shrunk.replace("{n}", small.length).replace("{kb}", Math.round(total / 1024));
        busy = null;
      });
    });
    form.addEventListener("submit", function (e) {
      if (!busy) return;
      e.preventDefault();
      busy.then(function () { form.requestSubmit ? form.requestSubmit() : form.submit(); });
    });
  });

  /* The order desk: new orders appear the moment they arrive (server-sent events). */
  var live = $("[data-live]");
  if (live && window.EventSource) {
    var toast = $("[data-toast]");
    var refresh = function () {
      fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var doc = new DOMParser().parseFromString(html, "text/html");
          ["#orders", "#counts"].forEach(function (id) {
            var fresh = $(id, doc), old = $(id);
            if (fresh && old) old.innerHTML = fresh.innerHTML;
          });
        });
    };
    var source = new EventSource(live.dataset.live);
    source.addEventListener("notification", function (e) {
      var data = JSON.parse(e.data);
      toast.textContent = data.title;  // the notification says what it is: "Đơn mới CV-… – 120.000 ₫"
      refresh();
    });
  }
})();
