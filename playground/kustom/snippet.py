"""The checkout order's ``html_snippet``: the shopper iframe, its overlay, ``_klarnaCheckout``.

The merchant's page embeds the snippet; its script answers ``window._klarnaCheckout``
(``suspend``, ``resume``, ``on``) as Kustom's does, and talks to the iframe (the shopper
page, :mod:`playground.kustom.shopper_page`) by ``postMessage`` with
``source: "kustom-playground"``: it passes ``suspend``/``resume`` down, and takes
``resize``, ``redirect`` (to the confirmation page) and ``event`` messages up.
"""

from __future__ import annotations

import html

_SNIPPET_SCRIPT = """(function (w, d) {
  function frame() { return d.getElementById("klarna-checkout-iframe"); }
  function overlay() { return d.getElementById("klarna-checkout-overlay"); }
  function origin(f) {
    try { return new URL(f.src, d.baseURI).origin; } catch (e) { return null; }
  }
  function tell(type) {
    var f = frame(), o = f && origin(f);
    if (f && o && f.contentWindow) {
      f.contentWindow.postMessage({ source: "kustom-playground", type: type }, o);
    }
  }
  if (typeof w._klarnaCheckout === "function") { return; }
  var handlers = {};
  var api = {
    suspend: function () {
      var f = frame(), o = overlay();
      if (f) { f.setAttribute("data-suspended", "true"); }
      if (o) { o.style.display = "flex"; }
      tell("suspend");
    },
    resume: function () {
      var f = frame(), o = overlay();
      if (f) { f.removeAttribute("data-suspended"); }
      if (o) { o.style.display = "none"; }
      tell("resume");
    },
    on: function (events) {
      for (var name in events) {
        if (Object.prototype.hasOwnProperty.call(events, name)) { handlers[name] = events[name]; }
      }
    }
  };
  w._klarnaCheckout = function (callback) { callback(api); };
  w._klarnaCheckout.handlers = handlers;
  w.addEventListener("message", function (event) {
    var f = frame();
    if (!f || event.source !== f.contentWindow || event.origin !== origin(f)) { return; }
    var m = event.data || {};
    if (m.source !== "kustom-playground") { return; }
    if (m.type === "resize" && m.height > 0) {
      f.style.height = Math.ceil(m.height) + "px";
    } else if (m.type === "redirect" && /^https?:[/][/]/.test(String(m.url))) {
      w.location.assign(m.url);
    } else if (m.type === "event" && typeof handlers[m.name] === "function") {
      handlers[m.name](m.data || {});
    }
  });
})(window, document);"""

_OVERLAY_STYLE = (
    "display: none; position: absolute; inset: 0; z-index: 10; align-items: center; "
    "justify-content: center; background: rgba(235, 235, 235, 0.8); color: #333; "
    "font: 600 18px/1.4 system-ui, sans-serif; cursor: progress;"
)


def html_snippet(base_url: str, order_id: str) -> str:
    """The checkout's embeddable HTML: the shopper iframe, its overlay and ``_klarnaCheckout``.

    ``suspend()`` greys the iframe out (overlay with "Updating…") and tells the iframe to
    block input; ``resume()`` removes the overlay and tells the iframe to re-read the order.
    The iframe asks the page (postMessage) to resize it and to send the shopper on to the
    confirmation page.
    """
    src = html.escape(f"{base_url.rstrip('/')}/playground/checkout/{order_id}", quote=True)
    return (
        '<div id="klarna-checkout-container" style="overflow-x: hidden; position: relative;">'
        f'<iframe id="klarna-checkout-iframe" name="klarna-checkout-iframe" src="{src}" '
        'title="Kustom Checkout (playground)" '
        'style="width: 100%; min-height: 600px; border: 0; display: block;" frameborder="0" '
        'scrolling="no"></iframe>'
        f'<div id="klarna-checkout-overlay" role="status" aria-live="polite" '
        f'style="{_OVERLAY_STYLE}">Updating\u2026</div>'
        f'<script type="text/javascript">{_SNIPPET_SCRIPT}</script>'
        "</div>"
    )
