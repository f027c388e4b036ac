/* Siyu H5 store: SKU choice by spec, quantity steppers, the WeChat Pay step. Vanilla JS, served by Siyu. */
(function () {
  "use strict";

  function fen(amount) { return "¥" + (amount / 100).toFixed(2); }

  // --- product page: pick a SKU by choosing one value per spec ---------------------------------------
  function productPage() {
    var data = document.getElementById("sku-data");
    var form = document.getElementById("buy-form");
    if (!data || !form) return;
    var skus = JSON.parse(data.textContent);
    var names = Array.prototype.map.call(form.querySelectorAll("fieldset[data-spec]"), function (f) { return f.dataset.spec; });
    var skuInput = form.querySelector("input[name=sku_id]");
    var price = document.getElementById("sku-price");
    var listPrice = document.getElementById("sku-list-price");
    var stock = document.getElementById("sku-stock");
    var buttons = form.querySelectorAll("button[type=submit]");

    function chosen() {
      var picked = {};
      names.forEach(function (name) {
        var input = form.querySelector("fieldset[data-spec='" + name + "'] input:checked");
        if (input) picked[name] = input.value;
      });
      return picked;
    }
    function matches(sku, picked) {
      return Object.keys(picked).every(function (name) { return sku.specs[name] === picked[name]; });
    }
    function update() {
      var picked = chosen();
      // a value is selectable when some SKU with stock has it together with the other choices made
      names.forEach(function (name) {
        form.querySelectorAll("fieldset[data-spec='" + name + "'] input").forEach(function (input) {
          var trial = Object.assign({}, picked); trial[name] = input.value;
          input.disabled = !skus.some(function (sku) { return matches(sku, trial) && sku.available > 0; });
        });
      });
      var complete = names.every(function (name) { return picked[name] !== undefined; });
      var sku = complete ? skus.find(function (s) { return matches(s, picked); }) : null;
      skuInput.value = sku ? sku.id : "";
      if (sku) {
        price.textContent = fen(sku.price_fen);
        if (listPrice) listPrice.textContent = sku.list_price_fen > sku.price_fen ? fen(sku.list_price_fen) : "";
        stock.textContent = sku.available > 0 ? (sku.low ? "仅剩 " + sku.available + " 件" : "有货") : "已售罄";
        stock.dataset.state = sku.available > 0 ? (sku.low ? "low" : "in_stock") : "sold_out";
      } else {
        stock.textContent = "请选择规格";
        stock.dataset.state = "choose";
      }
      buttons.forEach(function (b) { b.disabled = !sku || sku.available <= 0; });
    }
    form.addEventListener("change", update);
    if (skus.length === 1 && names.length === 0) { skuInput.value = skus[0].id; }
    update();
    if (skus.length === 1 && names.length === 0) { buttons.forEach(function (b) { b.disabled = skus[0].available <= 0; }); }
  }

  // --- quantity steppers ------------------------------------------------------------------------------
  function steppers() {
    document.querySelectorAll(".stepper").forEach(function (box) {
      var input = box.querySelector("input");
      box.querySelectorAll("button[data-step]").forEach(function (button) {
        button.addEventListener("click", function (event) {
          event.preventDefault();
          var next = (parseInt(input.value, 10) || 0) + parseInt(button.dataset.step, 10);
          var min = parseInt(input.min || "0", 10), max = parseInt(input.max || "99", 10);
          input.value = Math.max(min, Math.min(max, next));
          if (box.dataset.autosubmit !== undefined) input.form.submit();
        });
      });
    });
  }

  // --- checkout: recalculating the explained price when the coupon or points change ------------------
  function checkout() {
    var form = document.getElementById("quote-form");
    if (!form) return;
    form.querySelectorAll("[data-requote]").forEach(function (field) {
      field.addEventListener("change", function () { form.submit(); });
    });
  }

  // --- pay: WeChat's JSAPI in production, the simulated cashier in simulator mode ---------------------
  function pay() {
    var params = document.getElementById("pay-params");
    if (!params) return;
    var config = JSON.parse(params.textContent);
    var status = document.getElementById("pay-status");
    if (config.mode === "simulator") {
      var sheet = document.getElementById("sim-pay-sheet");
      if (sheet) sheet.hidden = false;
      return;
    }
    function invoke() {
      window.WeixinJSBridge.invoke("getBrandWCPayRequest", config.params, function (result) {
        if (result.err_msg === "get_brand_wcpay_request:ok") {
          status.textContent = "支付成功,正在确认…";
          window.location.href = config.done_url;
        } else if (result.err_msg === "get_brand_wcpay_request:cancel") {
          status.textContent = "已取消支付";
        } else {
          status.textContent = "支付失败,请稍后再试";
        }
      });
    }
    if (typeof window.WeixinJSBridge === "undefined") {
      status.textContent = "请在微信中打开本页面完成支付";
      document.addEventListener("WeixinJSBridgeReady", invoke, false);
    } else {
      invoke();
    }
  }

  // --- an order waiting for WeChat's notification refreshes itself a few times -----------------------
  function awaitPaid() {
    var box = document.querySelector("[data-await-paid]");
    if (!box) return;
    var tries = parseInt(sessionStorage.getItem("siyu-await") || "0", 10);
    if (tries < 10) {
      sessionStorage.setItem("siyu-await", String(tries + 1));
      setTimeout(function () { window.location.reload(); }, 1500);
    } else {
      sessionStorage.removeItem("siyu-await");
    }
  }

  // --- 秒杀: the time to the sale's start or end counts down; at zero the page reloads for the new state ----
  function countdowns() {
    var boxes = document.querySelectorAll("[data-countdown]");
    if (!boxes.length) return;
    function pad(n) { return (n < 10 ? "0" : "") + n; }
    // reload only when a count reaches zero while the page is open (a skewed phone clock never loops)
    var reloaded = false, started = Date.now();
    function tick() {
      boxes.forEach(function (box) {
        var left = Math.max(0, Math.floor((parseInt(box.dataset.countdown, 10) - Date.now()) / 1000));
        var days = Math.floor(left / 86400), rest = left % 86400;
        var text = pad(Math.floor(rest / 3600)) + ":" + pad(Math.floor(rest % 3600 / 60)) + ":" + pad(rest % 60);
        var target = box.querySelector(".countdown");
        if (target) target.textContent = (days ? days + "天 " : "") + text;
        if (left === 0 && !reloaded && parseInt(box.dataset.countdown, 10) > started) { reloaded = true; setTimeout(function () { window.location.reload(); }, 1000); }
      });
    }
    tick();
    setInterval(tick, 1000);
  }

  document.addEventListener("DOMContentLoaded", function () {
    productPage(); steppers(); countdowns(); checkout(); pay(); awaitPaid();
    if (!document.querySelector("[data-await-paid]")) sessionStorage.removeItem("siyu-await");
  });
})();
