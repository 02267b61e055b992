// Pulse Shop in the browser: a cart kept in localStorage, and the pw() calls a real shop makes.
// pw() is the queue stub from <head> until /pw.js arrives, so every call here is safe even
// when the loader never loads.
(function () {
  "use strict";
  var CART = "demo_cart", CART_ID = "demo_cart_id", EMAIL = "demo_email";

  function load(key) { try { return localStorage.getItem(key); } catch (e) { return null; } }
  function save(key, value) { try { localStorage.setItem(key, value); } catch (e) { /* off */ } }
  function drop(key) { try { localStorage.removeItem(key); } catch (e) { /* off */ } }

  function randomId() {
    var bytes = new Uint8Array(8), i;
    if (window.crypto && crypto.getRandomValues) crypto.getRandomValues(bytes);
    else for (i = 0; i < bytes.length; i++) bytes[i] = Math.floor(Math.random() * 256);
    return Array.prototype.map.call(bytes, function (b) { return (b + 256).toString(16).slice(1); }).join("");
  }

  // One id per cart, made on first use and kept until the cart is bought.
  function cartId() {
    var id = load(CART_ID);
    if (!id) { id = "c_" + randomId(); save(CART_ID, id); }
    return id;
  }

  function readCart() {
    try {
      var cart = JSON.parse(load(CART) || "[]");
      return Array.isArray(cart) ? cart : [];
    } catch (e) { return []; }
  }

  function writeCart(cart) { save(CART, JSON.stringify(cart)); showCount(cart); }

  function cents(n) { return Math.round(n * 100) / 100; }
  function total(cart) { return cents(cart.reduce(function (s, l) { return s + l.price * l.qty; }, 0)); }
  function money(n) {
    var currency = document.body.dataset.currency || "USD";
    try { return new Intl.NumberFormat("en-US", { style: "currency", currency: currency }).format(n); }
    catch (e) { return n.toFixed(2) + " " + currency; }
  }

  function showCount(cart) {
    var badge = document.getElementById("cart-count");
    if (badge) badge.textContent = String(cart.reduce(function (s, l) { return s + l.qty; }, 0));
  }

  function showEmail() {
    var email = load(EMAIL), who = document.getElementById("signed-in-as");
    if (email && who) { who.textContent = "Signed in as " + email; who.hidden = false; }
  }

  function addToCart(button) {
    var sku = button.dataset.sku, price = Number(button.dataset.price), cart = readCart();
    var line = cart.filter(function (l) { return l.sku === sku; })[0];
    if (line) line.qty += 1;
    else cart.push({ sku: sku, name: button.dataset.name, price: price, qty: 1 });
    writeCart(cart);
    pw("track", "cart_add", { sku: sku, qty: 1, price: price, cart_id: cartId() });
    document.getElementById("cart-status").textContent = "Added to cart";
  }

  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); return td; }

  // Fills #cart-lines from the cart; with `removable`, each line gets a Remove button.
  function showLines(cart, removable) {
    var table = document.getElementById("cart-lines"), body = table.querySelector("tbody");
    body.textContent = "";
    cart.forEach(function (line) {
      var row = body.insertRow(), link = document.createElement("a");
      link.href = "/demo/product/" + encodeURIComponent(line.sku);
      link.textContent = line.name;
      cell(row, "").appendChild(link);
      cell(row, String(line.qty));
      cell(row, money(line.price));
      cell(row, money(cents(line.price * line.qty)));
      if (removable) {
        var button = document.createElement("button");
        button.type = "button"; button.className = "button small remove"; button.textContent = "Remove";
        button.dataset.sku = line.sku;
        button.addEventListener("click", function () { removeLine(line.sku); });
        cell(row, "").appendChild(button);
      }
    });
    document.getElementById("cart-total").textContent = money(total(cart));
    table.hidden = cart.length === 0;
    document.getElementById("cart-empty").hidden = cart.length > 0;
  }

  function removeLine(sku) {
    var cart = readCart(), line = cart.filter(function (l) { return l.sku === sku; })[0];
    if (!line) return;
    writeCart(cart.filter(function (l) { return l.sku !== sku; }));
    pw("track", "cart_remove", { sku: sku, qty: line.qty, price: line.price, cart_id: cartId() });
    showCart();
  }

  function showCart() {
    var cart = readCart();
    showLines(cart, true);
    document.getElementById("checkout").hidden = cart.length === 0;
  }

  function showCheckout() {
    var cart = readCart(), button = document.getElementById("place-order");
    showLines(cart, false);
    if (cart.length === 0) return;
    button.disabled = false;
    pw("track", "checkout_start", { cart_id: cartId(), value: total(cart) });
    button.addEventListener("click", function () { placeOrder(button); });
  }

  // The purchase event is queued before leaving; the loader flushes its queue on pagehide.
  function placeOrder(button) {
    var cart = readCart(), orderId = "o_" + randomId();
    button.disabled = true;
    pw("track", "purchase", { order_id: orderId, value: total(cart),
                              currency: document.body.dataset.currency || "USD", cart_id: cartId() });
    writeCart([]);
    drop(CART_ID);
    setTimeout(function () { location.href = "/demo/thanks?order=" + encodeURIComponent(orderId); }, 50);
  }

  function start() {
    showCount(readCart());
    showEmail();
    var page = document.body.dataset.page, add = document.getElementById("add-to-cart");
    if (page === "product" && add) add.addEventListener("click", function () { addToCart(add); });
    if (page === "cart") showCart();
    if (page === "checkout") showCheckout();
  }

  start();
})();
